"""(being built) Security headers and CORS."""

from __future__ import annotations

from typing import Any

from tokenforge.config import Settings


class SecurityHeaders:
    def __init__(self, app: Any, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)
