"""Who a request acts as, and what each role may do.

Roles: ``creator`` launches tokens for its own wallet, comments, registers webhooks;
``operator`` may do everything a creator may and also read and re-queue dead letters,
manage API keys, read the audit log and moderate. An operator without a wallet may
launch for any creator it names (a platform-run launch, recorded in the audit log).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CREATOR = "creator"
    OPERATOR = "operator"


#: What each role includes (an operator may do what a creator may).
GRANTS: dict[Role, frozenset[Role]] = {
    Role.CREATOR: frozenset({Role.CREATOR}),
    Role.OPERATOR: frozenset({Role.CREATOR, Role.OPERATOR}),
}


class CredentialKind(StrEnum):
    API_KEY = "api_key"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``wallet`` is an EIP-55 EVM address or a base58 Solana key
    (None for an API key created without one); ``family`` is ``evm`` or ``solana`` when
    there is a wallet."""

    kind: CredentialKind
    #: The API key's or session's id (never the secret).
    credential_id: str
    role: Role
    wallet: str | None = None
    family: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller: ``api_key:<id>`` or ``session:<id>``,
        with the wallet when there is one."""
        base = f"{self.kind.value}:{self.credential_id}"
        return f"{base}/{self.wallet}" if self.wallet else base

    @property
    def subject(self) -> str:
        """What owns this caller's launches and webhooks: its wallet, else its API key."""
        return self.wallet or f"{self.kind.value}:{self.credential_id}"

    def may(self, role: Role) -> bool:
        return role in GRANTS[self.role]
