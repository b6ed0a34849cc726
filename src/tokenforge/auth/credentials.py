"""Bearer credentials: ``tfk_<id>_<secret>`` (API keys) and ``tfs_<id>_<secret>``
(sessions).

The id (16 hex) names the credential in listings and logs; the secret (32 random bytes,
base64url) is shown once. Only the SHA-256 of the whole credential is stored: with 256
random bits there is nothing to guess, so a slow password hash would add cost and no
safety. A presented credential is looked up by that hash.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

API_KEY_PREFIX = "tfk"
SESSION_PREFIX = "tfs"
_FORMAT = re.compile(r"^(tfk|tfs)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewCredential:
    id: str
    #: The whole credential: give it to the client once, never store or log it.
    token: str = field(repr=False)
    token_hash: str = field(repr=False)

    @property
    def display(self) -> str:
        """The public part, safe to show and log (``tfk_<id>``)."""
        return "_".join(self.token.split("_", 2)[:2])  # the secret may contain "_" itself


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_credential(prefix: str) -> NewCredential:
    cid = secrets.token_hex(8)
    token = f"{prefix}_{cid}_{secrets.token_urlsafe(32)}"
    return NewCredential(cid, token, hash_token(token))


def parse(token: str) -> tuple[str, str] | None:
    """``(prefix, id)`` of a well-formed credential, else None (nothing to look up)."""
    match = _FORMAT.match(token)
    return (match.group(1), match.group(2)) if match else None
