"""Request and response bodies for tokens and jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from tokenforge.domain.chains import ChainName
from tokenforge.domain.jobs import JobStatus, TokenStatus
from tokenforge.domain.tokens import URL_PATTERN
from tokenforge.store.models import JobRow, TokenRow

#: What a ``cursor`` may look like: the unpadded URL-safe base64 this API returns (or empty).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
#: The ``cursor`` query parameter of the operator pages (dead letters, the audit log).
PageCursor = Annotated[
    str | None,
    Query(
        max_length=128,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page, passed back unchanged; absent for the first page",
    ),
]


def _url_rules(what: str) -> str:
    return (
        f"{what} URL: http or https, a host, an optional port 0-65535, at most 200 characters, no "
        "user name or password (user:pass@), no whitespace or control characters; an empty string counts as absent"
    )


class LaunchFee(BaseModel):
    """A fee that starts at ``start_bps`` at the launch and decays linearly to the curve's base
    fee over ``window`` seconds or blocks: launch protection against snipers (EVM chains)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    start_bps: int = Field(
        ge=0, le=9900, description="The fee at the launch in basis points: above the base fee, within the chain's bound"
    )
    window: int = Field(ge=0, le=3600, description="How long it decays: 1 to the chain's bound (seconds or blocks)")
    unit: Literal["seconds", "blocks"] = "seconds"


def launch_fee_of(row: TokenRow | dict) -> LaunchFee | None:
    """The launch fee a token row (or its column values) records; None for none."""
    if isinstance(row, dict):
        bps, window, in_blocks = row["launch_fee_bps"], row["launch_fee_window"], row["launch_fee_in_blocks"]
    else:
        bps, window, in_blocks = row.launch_fee_bps, row.launch_fee_window, row.launch_fee_in_blocks
    if not window:
        return None
    unit: Literal["seconds", "blocks"] = "blocks" if in_blocks else "seconds"
    return LaunchFee(start_bps=bps, window=window, unit=unit)


class CreateTokenRequest(BaseModel):
    """A launch request. ``supply`` is in whole tokens (the chain stores supply × 10^decimals)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # JSON true is not 1, "6" is not 6
        json_schema_extra={
            "examples": [
                {
                    "chain": "solana",
                    "name": "Forge Coin",
                    "symbol": "FORGE",
                    "decimals": 6,
                    "supply": "1000000000",
                    "creator": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
                    "description": "The first token on TokenForge",
                    "website": "https://example.org",
                }
            ]
        },
    )

    chain: ChainName
    name: str = Field(
        min_length=1,
        max_length=32,
        description="1-32 characters after trimming spaces: printable characters and emoji sequences "
        "(zero-width joiners between emoji, flags, skin tones, keycaps); control characters, "
        "bidirectional overrides, zero-width spaces and other invisible formatting characters are refused",
    )
    symbol: str = Field(min_length=1, max_length=10, pattern=r"^[A-Z0-9]{1,10}$")
    decimals: int | None = Field(default=None, ge=0, le=18, description="Default: 18 on EVM chains, 9 on Solana")
    supply: Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=r"^[0-9]{1,80}$")] = Field(
        description="Whole tokens, > 0; an integer or a string of digits (for values past 2^53)"
    )
    creator: str | None = Field(
        default=None,
        min_length=32,
        max_length=44,
        pattern=r"^(0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44})$",
        description="EVM 0x address (EIP-55 checksum checked when mixed case) or Solana base58 public key. "
        "Default: the signed-in wallet or the API key's wallet; when given it must be that wallet (403 "
        "otherwise). Required only with an operator key that has no wallet.",
    )
    description: str = Field(
        default="",
        max_length=1000,
        description="Printable text, line breaks and tabs; the same invisible characters as `name` are refused",
    )
    image_url: str | None = Field(default=None, max_length=200, pattern=URL_PATTERN, description=_url_rules("Image"))
    website: str | None = Field(default=None, max_length=200, pattern=URL_PATTERN, description=_url_rules("Website"))
    twitter: str | None = Field(default=None, max_length=200, pattern=URL_PATTERN, description=_url_rules("X"))
    telegram: str | None = Field(default=None, max_length=200, pattern=URL_PATTERN, description=_url_rules("Telegram"))
    metadata_uri: str | None = Field(
        default=None, max_length=200, pattern=URL_PATTERN, description=_url_rules("Token metadata (Solana)")
    )
    launch_fee: LaunchFee | None = Field(
        default=None,
        description="EVM chains: a launch fee decaying from `start_bps` to the base fee over `window` "
        "within the chain's market settings (by default at most 9000 bps over 60 seconds or 30 blocks; 422 "
        "naming `launch_fee` outside them). `null` or absent: no launch fee. Ignored on Solana for now.",
    )


class TokenOut(BaseModel):
    id: str
    chain: str
    network: str
    name: str
    symbol: str
    decimals: int
    supply: str
    supply_base_units: str
    creator: str
    description: str
    image_url: str | None
    website: str | None
    twitter: str | None
    telegram: str | None
    metadata_uri: str | None
    status: TokenStatus
    address: str | None
    tx_id: str | None
    block_number: int | None
    gas_used: int | None
    fee_paid_base_units: str | None
    job_id: str
    launch_fee: LaunchFee | None = None
    created_at: datetime
    updated_at: datetime


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str
    kind: str
    token_id: str
    chain: str
    status: JobStatus
    final: bool
    attempts: int
    max_attempts: int
    error: JobError | None
    tx_id: str | None
    nonce: int | None
    token_address: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    events_url: str


class LaunchedToken(TokenOut):
    """The token of a 202: as ``GET /v1/tokens/{id}`` shows it, before it has a market."""

    market: None = Field(default=None, description="null: the market appears once the indexer has seen the launch")


class LaunchAccepted(BaseModel):
    token: LaunchedToken
    job: JobOut


class TokenPage(BaseModel):
    items: list[TokenOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class JobEventOut(BaseModel):
    id: int
    job_id: str
    status: JobStatus
    message: str
    data: dict
    at: datetime


def token_out(row: TokenRow) -> TokenOut:
    out = TokenOut.model_validate(row, from_attributes=True)
    return out.model_copy(update={"launch_fee": launch_fee_of(row)})


def job_out(row: JobRow) -> JobOut:
    from tokenforge.domain.jobs import FINAL

    error = JobError(code=row.error_code, message=row.error_message or "") if row.error_code else None
    return JobOut(
        id=row.id,
        kind=row.kind,
        token_id=row.token_id,
        chain=row.chain,
        status=JobStatus(row.status),
        final=JobStatus(row.status) in FINAL,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        error=error,
        tx_id=row.tx_id,
        nonce=row.nonce,
        token_address=row.token_address,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        events_url=f"/v1/jobs/{row.id}/events",
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def launch_body(token: dict, job: dict) -> dict:
    """The 202 body from the new rows' column values (the shape of :class:`LaunchAccepted`;
    built directly because it is on the hot path; tests check it against the model)."""
    token_body = {k: token[k] for k in TokenOut.model_fields if k not in ("created_at", "updated_at", "launch_fee")}
    token_body.update(created_at=_iso(token["created_at"]), updated_at=_iso(token["updated_at"]))
    fee = launch_fee_of(token)
    token_body["launch_fee"] = None if fee is None else fee.model_dump()
    token_body["market"] = None
    job_body = {
        "id": job["id"],
        "kind": job["kind"],
        "token_id": job["token_id"],
        "chain": job["chain"],
        "status": job["status"],
        "final": False,
        "attempts": job["attempts"],
        "max_attempts": job["max_attempts"],
        "error": None,
        "tx_id": None,
        "nonce": None,
        "token_address": None,
        "created_at": _iso(job["created_at"]),
        "updated_at": _iso(job["updated_at"]),
        "finished_at": None,
        "events_url": f"/v1/jobs/{job['id']}/events",
    }
    return {"token": token_body, "job": job_body}
