"""FastAPI dependencies: the container and a DB session, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from tokenforge.bootstrap import Container


async def get_container(request: Request) -> Container:
    return request.app.state.container


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.container.sessions() as session:
        yield session


ContainerDep = Annotated["Container", Depends(get_container)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
