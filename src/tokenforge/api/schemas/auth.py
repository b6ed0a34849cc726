"""Request and response bodies of wallet sign-in (``/v1/auth``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tokenforge.auth.principal import Principal

#: The longest sign-in message taken (a message with many resources stays far below).
MAX_MESSAGE_CHARS = 8192
#: The longest EVM signature taken: 65 bytes for a key, more for a contract wallet
#: (EIP-1271 signatures of multi-signature wallets concatenate several).
MAX_EVM_SIGNATURE_BYTES = 2048
_STRICT = ConfigDict(extra="forbid", strict=True)


class NonceRequest(BaseModel):
    """Optional: name the wallet and chain to get a ready message to sign."""

    model_config = _STRICT

    address: str | None = Field(default=None, max_length=64, description="The wallet (EIP-55 hex or base58)")
    chain: str | None = Field(default=None, max_length=32, description="A configured chain, e.g. `ethereum`, `solana`")


class NonceOut(BaseModel):
    nonce: str = Field(description="Put in the message's `Nonce:` line; usable once, until `expires_at`")
    issued_at: datetime = Field(description="A good `Issued At:`")
    expires_at: datetime = Field(description="The nonce's end; a good `Expiration Time:`")
    domain: str = Field(description="The message's domain (host[:port] of this server)")
    uri: str = Field(description="A good `URI:` (any URI on this origin is taken)")
    version: str = Field(description="`Version:`, always 1")
    statement: str = Field(description="A suggested statement")
    chain_ids: dict[str, int | str] = Field(
        description="The `Chain ID:` to sign for on each configured chain: EVM chain ids, "
        "and the Solana cluster name (`localnet`, `devnet`, `mainnet`)"
    )
    message: str | None = Field(
        default=None, description="The whole message to sign, when the request named `address` and `chain`"
    )


class SiweRequest(BaseModel):
    model_config = _STRICT

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The EIP-4361 message as signed")
    signature: str = Field(
        pattern=r"^0x(?:[0-9a-fA-F]{2})+$",
        max_length=2 + 2 * MAX_EVM_SIGNATURE_BYTES,
        description="The `personal_sign` signature as 0x-hex (65 bytes; a contract wallet's may be longer)",
    )


class SiwsRequest(BaseModel):
    model_config = _STRICT

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The Sign-In with Solana message")
    signature: str = Field(
        pattern=r"^[1-9A-HJ-NP-Za-km-z]{64,88}$",
        description="The ed25519 signature of the message's UTF-8 bytes, base58-encoded",
    )


class SessionOut(BaseModel):
    id: str
    wallet: str
    family: str = Field(description="`evm` or `solana`")
    role: str = Field(description="`creator`, or `operator` for a wallet in `operator_wallets`")
    expires_at: datetime


class SignedIn(BaseModel):
    token: str = Field(
        repr=False,
        description="The session's bearer token (`Authorization: Bearer …`); shown once, kept by the "
        "server only as a hash",
    )
    session: SessionOut


class PrincipalOut(BaseModel):
    kind: str = Field(description="`session` or `api_key`")
    id: str = Field(description="The session's or API key's id")
    role: str
    wallet: str | None
    family: str | None
    actor: str = Field(description="How the audit log names this caller")


def principal_out(principal: Principal) -> PrincipalOut:
    return PrincipalOut(
        kind=principal.kind.value,
        id=principal.credential_id,
        role=principal.role.value,
        wallet=principal.wallet,
        family=principal.family,
        actor=principal.actor,
    )
