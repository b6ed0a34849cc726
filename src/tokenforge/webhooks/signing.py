"""Webhook signatures: how TokenForge signs a delivery and how a receiver checks it.

Each delivery carries ``TokenForge-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>``
is HMAC-SHA256 under the webhook's secret (the ``whsec_…`` string shown once at
registration, all of it, as UTF-8 bytes) over ``f"{t}.{body}"``, ``body`` being the raw
request body bytes exactly as received. A receiver::

    t, v1 = (dict(p.split("=", 1) for p in header.split(","))[k] for k in ("t", "v1"))
    expected = hmac.new(secret.encode(), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, v1) and abs(time.time() - int(t)) <= 300

(:func:`verify` is that recipe.) The timestamp inside the signed bytes lets a receiver
refuse a replay of an old delivery; several ``v1=`` values may follow one another while a
secret is being rolled, and any one matching counts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

#: The prefix of a webhook secret as shown to its owner.
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
#: How old a signature :func:`verify` accepts by default.
TOLERANCE_S = 300
SIGNATURE_HEADER = "TokenForge-Signature"
DELIVERY_HEADER = "TokenForge-Delivery"
EVENT_HEADER = "TokenForge-Event"


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and 32 random bytes as hex."""
    return SECRET_PREFIX + secrets.token_hex(SECRET_BYTES)


def signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp_s}.{body}"`` under ``secret``."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, now_s: float | None = None) -> str:
    """The ``TokenForge-Signature`` value for ``body`` signed now."""
    t = int(time.time() if now_s is None else now_s)
    return f"t={t},v1={signature(secret, t, body)}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance_s: float = TOLERANCE_S, now_s: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` under ``secret`` within ``tolerance_s`` of now."""
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == "v1":
            candidates.append(value)
    if t is None or not candidates:
        return False
    if abs((time.time() if now_s is None else now_s) - t) > tolerance_s:
        return False
    expected = signature(secret, t, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
