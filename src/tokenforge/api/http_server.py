"""The HTTP/1.1 protocol ``tokenforge serve`` and ``tokenforge api`` run: uvicorn's
httptools protocol with a bounded request head and a deadline for the body.

uvicorn buffers a request's line and headers without limit and waits for them and for a
declared body without a deadline, so one client can grow the process by the size of
whatever it sends as a header, or hold a connection open by never finishing a head or a
body. This protocol answers instead:

* ``431`` when a request head (request line and headers) passes :data:`MAX_HEAD_BYTES`;
* ``408`` when a head has not arrived within ``head_timeout_s`` (``header_timeout_s``)
  of the connection opening or of its first byte;
* ``408`` when a declared body (``Content-Length`` or chunked) has not fully arrived
  within ``body_timeout_s`` of its head, whether or not the route reads it (a route that
  answered without reading it gets the connection closed instead),

each as problem+json, closing the connection. :meth:`BoundedHttpToolsProtocol.configure`
takes both timeouts from the settings (``roles.configure_process`` calls it in every
server process). Bodies are also limited in size and time by
:class:`tokenforge.api.limits.RequestLimits`. Pass the class as uvicorn's ``http``.
"""

from __future__ import annotations

import asyncio

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Largest request line plus headers accepted (browsers send a few KiB).
MAX_HEAD_BYTES = 64 * 1024
#: Longest wait for a complete request head on an open connection, unless configured
#: (``Settings.header_timeout_s``).
HEAD_TIMEOUT_S = 10.0
#: Longest wait for a declared request body after its head, unless configured
#: (``Settings.body_timeout_s``).
BODY_TIMEOUT_S = 10.0

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def _problem(status: int, code: str, detail: str) -> bytes:
    body = orjson.dumps(
        {
            "type": f"/problems/{code}",
            "title": _REASONS[status].decode(),
            "status": status,
            "detail": detail,
            "instance": None,
        }
    )
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` refusing request heads that are too large or too slow.

    Two counts bound a head: the bytes received while it is incomplete (the parser buffers
    a header until it ends, so this bounds memory when a head spans reads), and the size
    of the request line and headers once parsed (exact when a head arrives in one read).
    """

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S
    body_timeout_s = BODY_TIMEOUT_S

    @classmethod
    def configure(cls, *, head_timeout_s: float, body_timeout_s: float) -> None:
        """Use these timeouts on every connection this process accepts from now on (a
        subclass that sets its own keeps them)."""
        BoundedHttpToolsProtocol.head_timeout_s = head_timeout_s
        BoundedHttpToolsProtocol.body_timeout_s = body_timeout_s

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True  # the next bytes belong to a request head
        self._received_bytes = 0  # bytes received while the head is incomplete
        self._head_bytes = 0  # request target and headers parsed so far
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._awaiting_head:
            super().data_received(data)
            return
        self._received_bytes += len(data)
        super().data_received(data)
        if not self._head_pending() or self.transport.is_closing():
            return
        if self._received_bytes > self.max_head_bytes:
            self._too_large()
        elif self._received_bytes and self._head_timer is None:  # a head has begun and not ended
            self._arm_head_timer()

    # -- parser callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._received_bytes = 0
        self._cancel_head_timer()
        if self._head_bytes > self.max_head_bytes:
            self._too_large()  # the route never runs
            return
        super().on_headers_complete()
        # cancelled by on_message_complete, at once when the request has no body
        self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        if self._refused:
            return
        super().on_message_complete()
        self._awaiting_head = True  # the head timer starts with the next request's first byte
        self._received_bytes = 0

    # -- refusals --------------------------------------------------------------------------
    def _head_pending(self) -> bool:
        """Whether a request head is expected or under way and nothing was refused."""
        return self._awaiting_head and not self._refused

    def _answering(self) -> bool:
        """Whether a response is being sent on this connection."""
        cycle = getattr(self, "cycle", None)
        return cycle is not None and not cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._head_pending():
            return
        if self._answering():
            self._arm_head_timer()  # a pipelined head: judge it once the answer before it is sent
            return
        self._refuse(408, "request-timeout", f"the request head did not arrive within {self.head_timeout_s:g} s")

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self._refused or self.transport.is_closing():
            return
        self._cancel_head_timer()
        self._refused = True
        cycle = getattr(self, "cycle", None)
        # answered (or answering) without the body, or a response before it is under way:
        # a 408 cannot be written now, closing is all that is left
        if cycle is None or not (cycle.response_started or self.pipeline):
            self.transport.write(
                _problem(408, "request-timeout", f"the body did not arrive within {self.body_timeout_s:g} s")
            )
        if cycle is not None:  # the route waiting for the body sees a disconnect, and sends nothing more
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _too_large(self) -> None:
        self._refuse(
            431,
            "request-header-fields-too-large",
            f"the request line and headers are larger than {self.max_head_bytes} bytes",
        )

    def _refuse(self, status: int, code: str, detail: str) -> None:
        self._cancel_head_timer()
        self._refused = True
        if self.transport.is_closing():
            return
        if not self._answering():  # not in the middle of a response
            self.transport.write(_problem(status, code, detail))
        self.transport.close()
