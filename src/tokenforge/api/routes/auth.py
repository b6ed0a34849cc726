"""/v1/auth: wallet sign-in (EIP-4361 and Sign-In with Solana), the caller's session.

Flow: ``POST /v1/auth/nonce`` → the wallet signs a message naming that nonce →
``POST /v1/auth/siwe`` (EVM) or ``/v1/auth/siws`` (Solana) → a session token, sent as
``Authorization: Bearer`` on writes. ``DELETE /v1/auth/session`` signs out;
``POST /v1/auth/session/refresh`` swaps the token for a new one. What a message must say
is in :mod:`tokenforge.auth.signin`; a refused sign-in answers 401 ``signin-failed`` with
``errors`` naming the message part at fault.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from tokenforge.api.auth import AUTH_RESPONSES, required_principal
from tokenforge.api.deps import ContainerDep
from tokenforge.api.problems import PROBLEM_RESPONSES, problem_doc, problem_response
from tokenforge.api.schemas.auth import (
    NonceOut,
    NonceRequest,
    PrincipalOut,
    SessionOut,
    SignedIn,
    SiweRequest,
    SiwsRequest,
    principal_out,
)
from tokenforge.auth import sessions as auth_sessions
from tokenforge.auth import signin
from tokenforge.auth.principal import CredentialKind, Principal
from tokenforge.auth.wallets import normalise_wallet
from tokenforge.domain.chains import CHAINS, Family
from tokenforge.errors import ErrorCode, Forbidden, ValidationFailed

router = APIRouter(prefix="/v1/auth", tags=["auth"], responses=PROBLEM_RESPONSES)

CallerDep = Annotated[Principal, Depends(required_principal)]

_SIGNIN_RESPONSES: dict[int | str, dict] = {
    401: problem_doc(
        "The sign-in was refused (`/problems/signin-failed`): bad signature, expired, wrong domain, "
        "URI or chain, nonce unknown or used, malformed message; `errors` names the part"
    )
}


@router.post(
    "/nonce",
    response_model=NonceOut,
    summary="Get a sign-in nonce",
    description=(
        "A single-use nonce and what a sign-in message must say on this server. Name `address` "
        "and `chain` to get the whole `message` to sign."
    ),
)
async def nonce(container: ContainerDep, body: Annotated[NonceRequest | None, Body()] = None) -> NonceOut:
    policy = signin.SigninPolicy.from_settings(container.settings)
    issued = await signin.issue_nonce(container.sessions, policy)
    message = None
    if body is not None and (body.address or body.chain):
        if not body.chain or body.chain not in policy.chain_ids:
            raise ValidationFailed("chain", f"must be one of {', '.join(policy.chain_ids) or 'no chain'}")
        if not body.address:
            raise ValidationFailed("address", "is required with chain")
        family = CHAINS[body.chain].family
        address, found = normalise_wallet(body.address, field="address")
        if found is not family:
            raise ValidationFailed("address", f"must be a {family.value} wallet for {body.chain}")
        message = signin.suggested_message(policy, issued, family, address, str(policy.chain_ids[body.chain]))
    return NonceOut(
        nonce=issued.nonce,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        domain=policy.domain,
        uri=policy.origin + "/",
        version="1",
        statement=signin.STATEMENT,
        chain_ids=policy.chain_ids,
        message=message,
    )


async def _sign_in(request: Request, container, family: Family, message: str, signature: str):
    policy = signin.SigninPolicy.from_settings(container.settings)
    try:
        issued = await signin.sign_in(container.sessions, container.deployers, policy, family, message, signature)
    except signin.SigninFailed as failed:
        return problem_response(
            request,
            401,
            ErrorCode.SIGNIN_FAILED.replace("_", "-"),
            "Unauthorized",
            f"sign-in refused ({failed.reason}): {failed.field}: {failed.detail}",
            [{"field": _body_field(failed.field), "message": failed.detail}],
            headers={"WWW-Authenticate": 'Bearer realm="tokenforge"'},
        )
    return _signed_in(issued)


def _body_field(part: str) -> str:
    """The request field a message part is in: ``message.Nonce``, ``message``, ``signature``."""
    return part if part in ("message", "signature") else f"message.{part}"


def _signed_in(issued: auth_sessions.IssuedSession) -> SignedIn:
    row = issued.row
    return SignedIn(
        token=issued.token,
        session=SessionOut(id=row.id, wallet=row.wallet, family=row.family, role=row.role, expires_at=row.expires_at),
    )


@router.post(
    "/siwe",
    response_model=SignedIn,
    summary="Sign in with Ethereum (EIP-4361)",
    responses=_SIGNIN_RESPONSES,
    description="A `personal_sign` (EIP-191) signature of an EIP-4361 message naming a nonce from "
    "`POST /v1/auth/nonce`; contract wallets are checked with EIP-1271 on the message's chain.",
)
async def siwe(request: Request, body: SiweRequest, container: ContainerDep):
    return await _sign_in(request, container, Family.EVM, body.message, body.signature)


@router.post(
    "/siws",
    response_model=SignedIn,
    summary="Sign in with Solana",
    responses=_SIGNIN_RESPONSES,
    description="An ed25519 signature (base58) of a Sign-In with Solana message naming a nonce "
    "from `POST /v1/auth/nonce`.",
)
async def siws(request: Request, body: SiwsRequest, container: ContainerDep):
    return await _sign_in(request, container, Family.SOLANA, body.message, body.signature)


@router.get("/session", response_model=PrincipalOut, summary="Who am I", responses=AUTH_RESPONSES)
async def whoami(principal: CallerDep) -> PrincipalOut:
    return principal_out(principal)


def _own_session(principal: Principal) -> Principal:
    if principal.kind is not CredentialKind.SESSION:
        raise Forbidden("this credential is an API key, not a sign-in session (revoke keys with api-keys revoke)")
    return principal


@router.delete("/session", status_code=204, summary="Sign out", responses=AUTH_RESPONSES, response_class=Response)
async def sign_out(principal: CallerDep, container: ContainerDep) -> Response:
    """Revoke the caller's session: its token answers 401 ``credential-revoked`` from now on."""
    _own_session(principal)
    await auth_sessions.revoke(container.sessions, principal.credential_id, actor=principal.actor)
    return Response(status_code=204)


@router.post(
    "/session/refresh",
    response_model=SignedIn,
    summary="Swap the session token for a new one",
    responses=AUTH_RESPONSES,
    description="Issues a new session token for the same wallet and revokes the caller's, in one "
    "transaction; the new session ends when the old one would have (only signing in again extends it), "
    "and its role is worked out again.",
)
async def refresh(principal: CallerDep, container: ContainerDep) -> SignedIn:
    _own_session(principal)
    policy = signin.SigninPolicy.from_settings(container.settings)
    return _signed_in(await signin.rotate(container.sessions, policy, principal))
