"""/v1/tokens: launch a token, list and read tokens.

Reads answer from the cache (:mod:`tokenforge.cache`): a body is rendered once from the
database, as JSON bytes, and served as those bytes until a committed change to a token
invalidates it, cached or not the same bytes and headers. Each token carries its
``market`` (:mod:`tokenforge.market.analytics`, cached about a second)."""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from typing import Annotated, Any

import orjson
from eth_utils import is_hex_address, to_checksum_address
from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel

from tokenforge.api.auth import AUTH_RESPONSES, CreatorDep
from tokenforge.api.deps import CacheDep, ContainerDep, SessionDep
from tokenforge.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, Problem
from tokenforge.api.responses import OrjsonResponse
from tokenforge.api.schemas.market import TokenMarketOut, TokenMarketPage, TokenSortParam
from tokenforge.api.schemas.tokens import (
    CURSOR_PATTERN,
    CreateTokenRequest,
    LaunchAccepted,
    launch_body,
)
from tokenforge.bootstrap import market_terms
from tokenforge.domain.chains import ChainName
from tokenforge.domain.jobs import TokenStatus, could_be_id
from tokenforge.domain.tokens import URL_FIELDS, validate_launch
from tokenforge.errors import NotFound, ValidationFailed
from tokenforge.market.analytics import Analytics, parse_list_cursor
from tokenforge.net.ssrf import check_links
from tokenforge.services.launches import accept_launch, check_launch_fee, launch_creator, request_fingerprint

#: Tokens per page when the query names no ``limit``.
PAGE_SIZE = 50

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=PROBLEM_RESPONSES)


@router.post(
    "",
    status_code=202,
    response_model=LaunchAccepted,
    summary="Launch a token",
    responses=AUTH_RESPONSES,
    description=(
        "Needs a sign-in session or an API key (`Authorization: Bearer`); the token's creator is "
        "the signed-in wallet or the key's wallet (`creator` may be left out or must match it, "
        "else 403); an operator key without a wallet names the creator. "
        "Validates and records the launch, then answers at once with `202` and the job; a worker "
        "deploys it. Follow progress at `job.events_url` (Server-Sent Events). Send an "
        "`Idempotency-Key` header to make retries safe: the same key and body return the first "
        "response, the same key with another body is refused with 422."
    ),
)
async def create_token(
    body: CreateTokenRequest,
    container: ContainerDep,
    principal: CreatorDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="1-255 printable characters, not only spaces; "
            "makes retries of this request safe (kept at least 24 hours)",
        ),
    ] = None,
):
    if idempotency_key is not None and (not idempotency_key.strip() or not idempotency_key.isprintable()):
        raise ValidationFailed("header.idempotency-key", "must be 1-255 printable characters")
    creator = launch_creator(principal, body.chain, body.creator)
    params = validate_launch(**{**body.model_dump(), "creator": creator})
    fingerprint = ""
    if idempotency_key is not None:  # "same body" compares the supply as the number it is
        fingerprint = request_fingerprint(
            {**body.model_dump(mode="json"), "supply": str(params.supply), "creator": params.creator}
        )
    chain_settings = container.settings.chains.get(params.chain)
    if chain_settings is None:
        raise ValidationFailed("chain", f"{params.chain} is not enabled on this server")
    check_launch_fee(params, market_terms(params.chain, chain_settings))
    # links that name a non-public address are refused; see tokenforge.net.ssrf.check_link
    links = {f: getattr(params, f) for f in URL_FIELDS}
    await check_links(links, allowed_networks=container.settings.outbound_allowed_networks)
    accepted = await accept_launch(
        container.sessions,
        container.committer,
        params,
        network=chain_settings.network,
        max_attempts=container.settings.max_attempts,
        actor=principal.actor,
        owner=principal.subject,
        render=launch_body,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        idempotency_ttl=timedelta(hours=container.settings.idempotency_ttl_h),
    )
    if not accepted.replayed:
        container.wake_relay()
    headers = {"Location": f"/v1/jobs/{accepted.body['job']['id']}"}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return OrjsonResponse(accepted.body, status_code=accepted.status, headers=headers)


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw[:1] == "s" and raw[1:].isdigit() and len(raw) < 20:
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed("query.cursor", "is not a cursor this API returned")


def list_filters(
    cursor: str | None, creator: str | None, sort: str = "created"
) -> tuple[int | tuple[Any, int] | None, str | None]:
    """The page's ``before`` position (a sequence number for ``sort=created``, else the
    sort value and sequence number) and the creator as stored (EIP-55 for an EVM address),
    from the validated query; raises :class:`ValidationFailed` for a bad cursor."""
    before: int | tuple[Any, int] | None = None
    if cursor:
        before = _decode_cursor(cursor) if sort == "created" else parse_list_cursor(cursor, sort)
    if creator is not None and creator.startswith("0x") and is_hex_address(creator):
        creator = to_checksum_address(creator)  # stored in EIP-55 form
    return before, creator


def list_key(
    chain: str | None,
    status: TokenStatus | None,
    limit: int,
    before: int | tuple[Any, int] | None,
    creator: str | None,
    sort: str = "created",
) -> str:
    """The :data:`~tokenforge.cache.TOKEN_LIST` cache key of a page (also built by
    :mod:`tokenforge.api.fast_reads`); a sort other than ``created`` leads the key."""
    shown = f"{before[0]!r}~{before[1]}" if isinstance(before, tuple) else "" if before is None else str(before)
    # the creator (free text) last: no other part can contain the separator
    key = f"{chain or ''}|{status or ''}|{limit}|{shown}|{creator or ''}"
    return key if sort == "created" else f"{sort}|{key}"


def json_body(model: BaseModel) -> bytes:
    """The JSON a cached read stores and answers with."""
    return orjson.dumps(model.model_dump(mode="json"))


def json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get("", response_model=TokenMarketPage, summary="List tokens, newest first or by a market figure")
async def list_tokens(
    session: SessionDep,
    container: ContainerDep,
    cache: CacheDep,
    chain: Annotated[ChainName | None, Query(description="Only tokens on this chain")] = None,
    creator: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[0-9A-Za-z]*$",  # addresses and keys are alphanumeric (hex, base58)
            description="Only tokens of this creator (an EVM address in any letter case, or a Solana key)",
        ),
    ] = None,
    status: Annotated[TokenStatus | None, Query(description="Only tokens in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Tokens per page, 1-200")] = PAGE_SIZE,
    cursor: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page, passed back unchanged (opaque; any other "
            "value is refused with 422); absent or empty for the first page",
        ),
    ] = None,
    sort: Annotated[
        TokenSortParam,
        Query(
            description="Order, descending: `created` (newest first), `market_cap`, `volume_24h`, "
            "`last_trade`, `progress` (tokens without a market last)"
        ),
    ] = "created",
):
    before, creator = list_filters(cursor, creator, sort)
    body = await Analytics(container.sessions, cache, container.price_feed).token_page(
        session,
        key=list_key(chain, status, limit, before, creator, sort),
        limit=limit,
        sort=sort,
        after=before,
        chain=chain,
        creator=creator,
        status=status,
    )
    return json_response(body)


@router.get(
    "/{token_id}",
    response_model=TokenMarketOut,
    summary="Read one token and its market",
    responses={404: {"model": Problem, "description": "No such token", "content": {PROBLEM_JSON: {}}}},
)
async def get_token(
    token_id: Annotated[str, Path(description="A token `id` this API returned")],
    session: SessionDep,
    container: ContainerDep,
    cache: CacheDep,
):
    if not could_be_id(token_id):
        raise NotFound(f"token {token_id[:64]} does not exist")
    body = await Analytics(container.sessions, cache, container.price_feed).token_detail(session, token_id)
    return json_response(body)
