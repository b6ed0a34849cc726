"""(being built) Inbound rate limits."""

from __future__ import annotations

from typing import Any

from tokenforge.config import Settings


class RateLimits:
    def __init__(self, app: Any, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
