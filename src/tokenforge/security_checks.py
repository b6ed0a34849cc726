"""Start-up refuses placeholder secrets on non-local networks.

:func:`refuse_placeholder_secrets` runs in ``bootstrap.build_container``. While every
configured chain is on an ``embedded`` or ``local`` network it checks nothing (development
keeps its defaults). As soon as one chain is on a ``testnet`` or ``mainnet``, start-up is
refused, naming the setting, when:

* ``TOKENFORGE_MASTER_KEY`` is set to something that is not 32 random bytes: text such as
  ``changeme`` or ``secret`` (base64 or not), fewer than 32 bytes once decoded, bytes
  that are all printable text, or bytes with few distinct values (``AAAA…``);
* ``TOKENFORGE_DATABASE_URL``, ``TOKENFORGE_BROKER_URL`` or ``TOKENFORGE_CACHE_URL``
  carries a well-known default password (``guest:guest``, ``postgres:postgres``,
  ``password``, a password equal to the user name …), or an AMQP URL has no password at
  all (the client then logs in as ``guest:guest``);
* ``TOKENFORGE_PUBLIC_URL`` is unset or ``http://`` (sign-in messages, cookies and HSTS
  need the https address people reach).

Messages never repeat a password or key.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote, urlsplit

from tokenforge.config import Settings
from tokenforge.domain.chains import Network
from tokenforge.errors import ErrorCode, PermanentError

#: Secrets people type when they mean "fill in later".
PLACEHOLDER_WORDS = frozenset(
    {
        "admin",
        "changeit",
        "changeme",
        "change-me",
        "change_me",
        "default",
        "dev",
        "example",
        "guest",
        "letmein",
        "pass",
        "passw0rd",
        "password",
        "postgres",
        "rabbitmq",
        "redis",
        "root",
        "secret",
        "test",
        "tokenforge",
        "xxx",
    }
)
MASTER_KEY_BYTES = 32
#: Random 32 bytes have about 30 distinct values; fewer than this is a pattern.
MIN_DISTINCT_BYTES = 16


def uses_public_network(settings: Settings) -> bool:
    """Whether a configured chain is on a testnet or mainnet."""
    return any(c.network in (Network.TESTNET, Network.MAINNET) for c in settings.chains.values())


def refuse_placeholder_secrets(settings: Settings) -> None:
    """Raise :class:`~tokenforge.errors.PermanentError` (``INVALID_PARAMETER``) naming
    every setting the module docstring lists that holds a placeholder, when a chain is on a
    public network; return otherwise."""
    if not uses_public_network(settings):
        return
    problems = []
    if settings.master_key is not None:
        why = master_key_weakness(settings.master_key.get_secret_value())
        if why:
            problems.append(f"TOKENFORGE_MASTER_KEY {why}")
    urls = {"DATABASE_URL": settings.database_url, "BROKER_URL": settings.broker_url, "CACHE_URL": settings.cache_url}
    for name, url in urls.items():
        why = url_password_weakness(url) if url else None
        if why:
            problems.append(f"TOKENFORGE_{name} {why}")
    public_url = settings.public_url
    if not public_url:
        problems.append("TOKENFORGE_PUBLIC_URL is unset (set the https:// address people reach)")
    elif not public_url.lower().startswith("https://"):
        problems.append("TOKENFORGE_PUBLIC_URL must be https:// on testnets and mainnets")
    if problems:
        raise PermanentError(
            "refusing to start on a testnet or mainnet: " + "; ".join(problems),
            code=ErrorCode.INVALID_PARAMETER,
        )


def _is_placeholder_text(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered in PLACEHOLDER_WORDS or any(lowered.startswith(w) for w in PLACEHOLDER_WORDS if len(w) >= 6)


def master_key_weakness(value: str) -> str | None:
    """Why ``value`` is not a usable master key (``None`` when it looks like 32 random
    bytes in base64). Never includes the value."""
    if _is_placeholder_text(value) or len(set(value.strip())) < 4:
        return "is a placeholder (generate one: head -c 32 /dev/urandom | base64)"
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "is not base64 (generate one: head -c 32 /dev/urandom | base64)"
    if len(key) < MASTER_KEY_BYTES:
        return f"decodes to {len(key)} bytes, fewer than {MASTER_KEY_BYTES}"
    if key.isascii() and key.decode("ascii").isprintable():
        return "decodes to text, not random bytes (generate one: head -c 32 /dev/urandom | base64)"
    if len(set(key)) < MIN_DISTINCT_BYTES:
        return "repeats a few byte values: a placeholder, not random bytes"
    return None


def url_password_weakness(url: str) -> str | None:
    """Why the credentials in ``url`` are a well-known default (``None`` otherwise)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    user = unquote(parts.username or "")
    password = unquote(parts.password or "") if parts.password is not None else None
    if parts.scheme.startswith("amqp") and not password:
        return "has no password: the broker login defaults to guest:guest"
    if password is None:
        return None
    if not password or password.lower() == user.lower() or _is_placeholder_text(password):
        return "uses a well-known default password"
    return None
