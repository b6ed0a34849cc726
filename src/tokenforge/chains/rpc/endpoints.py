"""One JSON-RPC endpoint as configured, and the only form in which its URL may be shown.

Endpoint URLs often carry API keys (``https://mainnet.example.com/v3/KEY``), so logs,
errors and health reports name an endpoint by :func:`redact_url` only: scheme, host and
port.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """``https://rpc.example.com/…``: scheme, host and port only; anything else is hidden."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    label = f"{parts.scheme.lower()}://{host}"
    if port is not None:
        label += f":{port}"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        label += "/…"
    return label


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """An http(s) endpoint, its share of first-choice traffic, its per-request timeout and
    its client-side budget of calls per second (None: unlimited; calls over it wait their
    turn, :mod:`tokenforge.outbound`)."""

    url: str
    weight: int = 1  # relative share of first-choice traffic, >= 1
    timeout_s: float = 10.0  # per request to this endpoint
    max_rps: float | None = None  # calls per second to this endpoint, > 0; None: no budget

    def __post_init__(self) -> None:
        label = redact_url(self.url)
        if urlsplit(self.url.strip()).scheme.lower() not in ("http", "https") or label == "<invalid url>":
            raise ValueError(f"RPC endpoint {label}: an http(s) URL with a host is required")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or self.weight < 1:
            raise ValueError(f"RPC endpoint {label}: weight must be an integer >= 1")
        if not self.timeout_s > 0:
            raise ValueError(f"RPC endpoint {label}: timeout_s must be > 0")
        if self.max_rps is not None and not self.max_rps > 0:
            raise ValueError(f"RPC endpoint {label}: max_rps must be > 0 (or None for no budget)")
