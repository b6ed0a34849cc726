"""Public reads of the market: a token's trades, candles and holders, platform stats, and
Server-Sent Events of the market's feed. No credential needed; counted against the read
rate limits like every GET (:mod:`tokenforge.api.ratelimit`). Bodies come from
:class:`~tokenforge.market.analytics.Analytics` (cached about a second); streams from
:func:`tokenforge.market.streams.follow`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from tokenforge.api.deps import CacheDep, ContainerDep, SessionDep
from tokenforge.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, Problem
from tokenforge.api.schemas.market import CandleInterval, CandlesOut, HoldersOut, StatsOut, TradePage
from tokenforge.api.schemas.tokens import CURSOR_PATTERN
from tokenforge.cache import Cache
from tokenforge.domain.jobs import could_be_id
from tokenforge.errors import NotFound, ValidationFailed
from tokenforge.market.analytics import Analytics
from tokenforge.market.streams import follow, parse_last_event_id
from tokenforge.store.repositories import market as market_repo
from tokenforge.store.repositories import tokens as tokens_repo

router = APIRouter(tags=["market"], responses=PROBLEM_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such token, or no market yet", "content": {PROBLEM_JSON: {}}}
}
STREAM: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}, "description": "event stream"}}
#: Latest bucket start a candle query may name (unix seconds; far past any block time).
MAX_TIME_S = 2**40

TokenId = Annotated[str, Path(description="A token `id` this API returned")]
LastEventId = Annotated[
    str | None,
    Header(
        max_length=20,
        description="The `id` of the last event received: the stream replays every event after it, "
        "then goes on live (absent or not decimal digits: live events only)",
    ),
]
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_STREAM_TEXT = (
    " Each event: `id:` (the feed's id; reconnect with `Last-Event-ID` to miss nothing), `event:` "
    "(token, trade, graduation or rollback) and JSON `data` {id, kind, chain, token_address, "
    "block_number, payload, at}. `: keep-alive` comments while idle; on a database failure or a "
    "server stop the stream ends with a `retry:` field (milliseconds before reconnecting)."
)


def _analytics(container: Any, cache: Cache) -> Analytics:
    return Analytics(container.sessions, cache, container.price_feed)


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _token_id(token_id: str) -> str:
    if not could_be_id(token_id):
        raise NotFound(f"token {token_id[:64]} does not exist")
    return token_id


@router.get(
    "/v1/tokens/{token_id}/trades",
    response_model=TradePage,
    summary="A token's trades, newest first",
    responses=NOT_FOUND,
)
async def trades(
    token_id: TokenId,
    session: SessionDep,
    container: ContainerDep,
    cache: CacheDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Trades per page, 1-200")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=256, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page, unchanged"),
    ] = None,
):
    body = await _analytics(container, cache).trades(session, _token_id(token_id), cursor=cursor or None, limit=limit)
    return _json(body)


@router.get(
    "/v1/tokens/{token_id}/candles",
    response_model=CandlesOut,
    summary="A token's OHLC candles, oldest first",
    description="Buckets with `from <= time < to` (unix seconds); the newest `limit` of them when more match.",
    responses=NOT_FOUND,
)
async def candles(
    token_id: TokenId,
    session: SessionDep,
    container: ContainerDep,
    cache: CacheDep,
    interval: Annotated[CandleInterval, Query(description="Bucket length")] = "1m",
    from_s: Annotated[int | None, Query(alias="from", ge=0, le=MAX_TIME_S, description="Unix seconds")] = None,
    to_s: Annotated[int | None, Query(alias="to", ge=0, le=MAX_TIME_S, description="Unix seconds")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Candles, 1-1000")] = 500,
):
    if from_s is not None and to_s is not None and to_s <= from_s:
        raise ValidationFailed("query.to", "must be after `from`")
    body = await _analytics(container, cache).candles(
        session, _token_id(token_id), interval=interval, from_s=from_s, to_s=to_s, limit=limit
    )
    return _json(body)


@router.get(
    "/v1/tokens/{token_id}/holders",
    response_model=HoldersOut,
    summary="A token's largest holders",
    description="`is_curve`: the bonding curve's balance (tokens still for sale); `is_pool`: the "
    "Uniswap pair's after graduation; `pct_of_supply` of the whole supply.",
    responses=NOT_FOUND,
)
async def holders(
    token_id: TokenId,
    session: SessionDep,
    container: ContainerDep,
    cache: CacheDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Holders, 1-100")] = 20,
):
    return _json(await _analytics(container, cache).holders(session, _token_id(token_id), limit=limit))


@router.get("/v1/stats", response_model=StatsOut, summary="Platform totals and 24 h volume per chain")
async def stats(session: SessionDep, container: ContainerDep, cache: CacheDep):
    return _json(await _analytics(container, cache).stats(session))


@router.get(
    "/v1/tokens/{token_id}/trades/stream",
    summary="Stream a token's market events (Server-Sent Events)",
    description="The token's trades and graduation, and its chain's rollbacks." + _STREAM_TEXT,
    responses={**NOT_FOUND, **STREAM},
)
async def token_stream(token_id: TokenId, request: Request, container: ContainerDep, last_event_id: LastEventId = None):
    async with container.sessions() as session:
        market = await market_repo.market_of(session, _token_id(token_id))
        token = await tokens_repo.get(session, token_id) if market is None else None
    if market is not None:
        chain, address = market.chain, market.token_address
    elif token is not None and token.address is not None:
        chain, address = token.chain, token.address
    else:
        raise NotFound(f"token {token_id} does not exist" if token is None else f"token {token_id} has no address yet")
    return _stream(request, container, last_event_id, chain=chain, token_address=address)


@router.get(
    "/v1/stream",
    summary="Stream every market event (Server-Sent Events)",
    description="New tokens, trades, graduations and rollbacks on every chain." + _STREAM_TEXT,
    responses=STREAM,
)
async def market_stream(request: Request, container: ContainerDep, last_event_id: LastEventId = None):
    return _stream(request, container, last_event_id)


def _stream(
    request: Request,
    container: Any,
    last_event_id: str | None,
    *,
    chain: str | None = None,
    token_address: str | None = None,
) -> StreamingResponse:
    events = follow(
        container.sessions,
        container.market_streams,
        after=parse_last_event_id(last_event_id),
        poll_s=container.settings.event_poll_s,
        is_disconnected=request.is_disconnected,
        chain=chain,
        token_address=token_address,
    )
    return StreamingResponse(events, media_type="text/event-stream", headers=_STREAM_HEADERS)
