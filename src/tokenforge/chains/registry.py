"""Deployers per chain, opened lazily and closed together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tokenforge.chains.ports import ChainDeployer
from tokenforge.errors import ErrorCode, PermanentError

DeployerFactory = Callable[[], Awaitable[ChainDeployer]]


class DeployerRegistry:
    def __init__(self, factories: dict[str, DeployerFactory]) -> None:
        self._factories = factories
        self._open: dict[str, ChainDeployer] = {}
        self._locks: dict[str, asyncio.Lock] = {name: asyncio.Lock() for name in factories}

    @property
    def chains(self) -> list[str]:
        return sorted(self._factories)

    async def get(self, chain: str) -> ChainDeployer:
        deployer = self._open.get(chain)
        if deployer is not None:
            return deployer
        if chain not in self._factories:
            raise PermanentError(f"chain {chain!r} is not enabled on this worker", code=ErrorCode.CHAIN_DISABLED)
        async with self._locks[chain]:
            if chain not in self._open:
                self._open[chain] = await self._factories[chain]()
            return self._open[chain]

    def opened(self, chain: str) -> ChainDeployer | None:
        """The deployer for ``chain`` if this process has opened it, else None (no I/O)."""
        return self._open.get(chain)

    async def close(self) -> None:
        for deployer in self._open.values():
            await deployer.close()
        self._open.clear()
