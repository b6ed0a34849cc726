"""How a server that cannot start says why: one line, not a traceback.

:func:`report_startup_failures` wraps the ASGI application ``tokenforge serve`` runs. When
the application's start-up fails with a :class:`~tokenforge.errors.TokenForgeError` (a
chain that cannot be opened, a key that cannot pay, a state directory in use), the server
reports ``cannot start: <code>: <message>`` and exits, instead of printing the traceback of
the lifespan machinery. Any other exception is reported as before, with its traceback: it
is a bug.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tokenforge.errors import TokenForgeError

# The ASGI callable's shape (the spec's scope and messages are mutable string-keyed mappings).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def report_startup_failures(app: Asgi) -> Asgi:
    """``app`` with start-up failures reported in one line (see the module docstring)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_startup_failure(message: Message) -> None:
            if message.get("type") == "lifespan.startup.failed":
                held.append(message)  # sent once the exception shows what failed
                return
            await send(message)

        try:
            await app(scope, receive, hold_startup_failure)
        except TokenForgeError as exc:
            if not held:
                raise
            await send({"type": "lifespan.startup.failed", "message": f"cannot start: {exc}"})
            return
        except BaseException:
            for message in held:
                await send(message)
            raise
        for message in held:
            await send(message)

    return wrapped
