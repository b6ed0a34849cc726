"""Request and response bodies of ``/v1/ops/api-keys``.

:class:`ApiKeyOut` describes a key by its public parts only (id, ``tfk_<id>`` prefix, role,
wallet, times); the secret appears once, in :class:`ApiKeyIssued`, the answer to the
request that created the key.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tokenforge.auth.principal import Role
from tokenforge.store.models import ApiKeyRow

#: The longest lifetime ``expires_in_s`` may ask for (ten years).
MAX_EXPIRES_IN_S = 10 * 366 * 24 * 3600


class CreateApiKeyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"role": "creator", "wallet": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "expires_in_s": 2592000}
            ]
        },
    )

    role: Role = Field(strict=False, description="`creator` (launches for its wallet) or `operator` (everything)")
    wallet: str | None = Field(
        default=None,
        min_length=32,
        max_length=44,
        pattern=r"^(0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32,44})$",
        description="The wallet the key launches for: required for a creator key; an operator key "
        "without one names the creator of each launch",
    )
    label: str = Field(default="", max_length=128, description="What the key is for, shown in listings")
    expires_at: AwareDatetime | None = Field(
        default=None, strict=False, description="When the key stops working (RFC 3339 with an offset); default: never"
    )
    expires_in_s: int | None = Field(
        default=None, ge=1, le=MAX_EXPIRES_IN_S, description="Or: seconds from now until the key stops working"
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> CreateApiKeyRequest:
        if self.expires_at is not None and self.expires_in_s is not None:
            raise ValueError("give expires_at or expires_in_s, not both")
        return self


class ApiKeyOut(BaseModel):
    id: str
    prefix: str = Field(description="The key's public start (`tfk_<id>`): what logs and the audit log name")
    role: Role
    wallet: str | None
    label: str
    created_by: str = Field(description="Who issued it, as the audit log names them")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Last request with the key (kept to the minute)")
    revoked_at: datetime | None


class ApiKeyIssued(ApiKeyOut):
    key: str = Field(
        repr=False,
        description="The key itself, shown this once: send it as `Authorization: Bearer …`. "
        "TokenForge keeps only its SHA-256 and cannot show it again.",
    )


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


def api_key_out(row: ApiKeyRow) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        prefix=row.prefix,
        role=Role(row.role),
        wallet=row.wallet,
        label=row.label,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
