"""/v1/ops/api-keys: issue, list and revoke API keys (operators only).

The same operations as ``tokenforge api-keys`` (:mod:`tokenforge.auth.api_keys`), audited
under the calling operator's actor. The key's secret is in the answer to ``POST`` only;
listings show its public prefix.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Path, Query

from tokenforge.api.auth import OperatorDep, operator_router
from tokenforge.api.deps import ContainerDep, SessionDep
from tokenforge.api.problems import problem_doc
from tokenforge.api.responses import OrjsonResponse
from tokenforge.api.schemas.api_keys import ApiKeyIssued, ApiKeyList, CreateApiKeyRequest, api_key_out
from tokenforge.auth import api_keys
from tokenforge.store.db import utcnow

router = operator_router("/v1/ops/api-keys")


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyIssued,
    summary="Issue an API key (its secret is shown in this answer only)",
    description="A creator key must name its `wallet`; an operator key may. The answer's `key` is "
    "the only time the secret is shown: TokenForge stores its SHA-256.",
)
async def create_api_key(body: CreateApiKeyRequest, container: ContainerDep, principal: OperatorDep):
    expires_at = body.expires_at
    if body.expires_in_s is not None:
        expires_at = utcnow() + timedelta(seconds=body.expires_in_s)
    issued = await api_keys.create(
        container.sessions,
        role=body.role,
        actor=principal.actor,
        wallet=body.wallet,
        label=body.label,
        expires_at=expires_at,
    )
    out = ApiKeyIssued(**api_key_out(issued.row).model_dump(), key=issued.token)
    headers = {"Location": f"/v1/ops/api-keys/{issued.row.id}", "Cache-Control": "no-store"}
    return OrjsonResponse(out.model_dump(mode="json"), status_code=201, headers=headers)


@router.get("", response_model=ApiKeyList, summary="List API keys (never their secrets)")
async def list_api_keys(
    session: SessionDep,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys")] = False,
):
    rows = await api_keys.list_keys(session, include_revoked=include_revoked)
    return ApiKeyList(items=[api_key_out(r) for r in rows])


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke an API key at once",
    responses={404: problem_doc("No active key with this id")},
)
async def revoke_api_key(
    key_id: Annotated[str, Path(max_length=32, pattern=r"^[0-9a-f]{1,32}$", description="The key's `id`")],
    container: ContainerDep,
    principal: OperatorDep,
) -> None:
    await api_keys.revoke(container.sessions, key_id, actor=principal.actor)
