"""Who is calling: FastAPI dependencies over :func:`tokenforge.auth.sessions.authenticate`.

``Authorization: Bearer <API key or session token>`` on any request. Reads are public;
every write depends on :data:`CreatorDep` or :data:`OperatorDep`. A missing, malformed,
unknown, expired or revoked credential answers ``401`` (``WWW-Authenticate: Bearer``) and
a credential whose role does not allow the route answers ``403``, both problem+json
naming why (``/problems/auth-required``, ``credential-expired``, ``forbidden``, ...).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tokenforge.api.deps import ContainerDep
from tokenforge.api.problems import PROBLEM_RESPONSES, problem_doc
from tokenforge.auth.principal import Principal, Role
from tokenforge.auth.sessions import authenticate
from tokenforge.errors import ErrorCode, Forbidden, Unauthenticated

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key (`tfk_…`, `tokenforge api-keys create`) or a sign-in session token "
    "(`tfs_…`, `POST /v1/auth/siwe` or `/v1/auth/siws`)",
)


async def optional_principal(
    request: Request,
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller, or None without credentials; a credential that does not authenticate is
    refused even where none is needed (a client should learn its key is bad) — except for
    cache hits of token reads, answered before routing (:mod:`tokenforge.api.fast_reads`)."""
    if credentials is None:
        return None
    principal = await authenticate(container.sessions, credentials.credentials)
    request.state.principal = principal
    return principal


async def required_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise Unauthenticated(
            "sign in (POST /v1/auth/siwe or /v1/auth/siws) or send an API key as Authorization: Bearer",
            code=ErrorCode.AUTH_REQUIRED,
        )
    return principal


def require_role(role: Role):
    async def dependency(principal: Annotated[Principal, Depends(required_principal)]) -> Principal:
        if not principal.may(role):
            raise Forbidden(f"this needs the {role.value} role; the credential has {principal.role.value}")
        return principal

    return dependency


PrincipalDep = Annotated[Principal | None, Depends(optional_principal)]
CreatorDep = Annotated[Principal, Depends(require_role(Role.CREATOR))]
OperatorDep = Annotated[Principal, Depends(require_role(Role.OPERATOR))]


#: The 401 and 403 answers of routes that need a credential, for the OpenAPI document.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem_doc(
        "No credential, or one that is malformed, unknown, expired or revoked (`type` says which)",
        {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    ),
    403: problem_doc("The credential's role or wallet does not allow this (`type` says which)"),
}


def operator_router(prefix: str) -> APIRouter:
    """A router whose every route needs an operator credential (``/v1/ops/...``)."""
    return APIRouter(
        prefix=prefix,
        tags=["operations"],
        dependencies=[Depends(require_role(Role.OPERATOR))],
        responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
    )
