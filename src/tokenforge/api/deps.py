"""FastAPI dependencies: the container, a DB session and the cache, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.cache import Cache

if TYPE_CHECKING:
    from tokenforge.bootstrap import Container


async def get_container(request: Request) -> Container:
    return request.app.state.container


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.container.sessions() as session:
        yield session


async def get_cache(request: Request) -> Cache:
    return request.app.state.container.cache


ContainerDep = Annotated["Container", Depends(get_container)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
CacheDep = Annotated[Cache, Depends(get_cache)]
