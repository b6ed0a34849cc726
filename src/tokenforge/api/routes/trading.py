"""Trading without custody: quotes and unsigned trade transactions on a token's curve.

Both routes are public (no credential) and write nothing; the rate limiter counts them as
reads (:mod:`tokenforge.api.ratelimit`). The trader's own wallet signs and sends what
``trades/build`` returns; the platform never signs a trade. Quotes come from the curve's
indexed state (:mod:`tokenforge.market.quotes`); a graduated curve answers 409
``/problems/curve-graduated`` with its pool (``pool``), an unknown or unindexed one 404.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from tokenforge.api.deps import ContainerDep, SessionDep
from tokenforge.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, problem_doc
from tokenforge.api.responses import OrjsonResponse
from tokenforge.api.schemas.trading import (
    AMOUNT_DOC,
    AMOUNT_PATTERN,
    QuoteOut,
    TradeBuildRequest,
    TradeTxOut,
    quote_out,
    trade_tx_out,
)
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.domain.jobs import could_be_id
from tokenforge.domain.tokens import normalise_address
from tokenforge.errors import NotFound
from tokenforge.market.quotes import MAX_SLIPPAGE_BPS, CurveGraduated, Side, Unit, parse_amount, quote_market
from tokenforge.market.trade_tx import build_trade_tx
from tokenforge.store.repositories.market_quotes import quote_source

router = APIRouter(prefix="/v1/tokens", tags=["trading"], responses=PROBLEM_RESPONSES)

TokenId = Annotated[str, Path(description="A token `id` this API returned")]
_RESPONSES: dict[int | str, dict] = {
    404: problem_doc("No such token, or its curve is not indexed yet"),
    409: problem_doc("The curve graduated (`/problems/curve-graduated`); `pool` is where the token trades"),
}


def _graduated(request: Request, exc: CurveGraduated) -> OrjsonResponse:
    """409 problem+json with the extension member ``pool`` (RFC 9457 section 3.2)."""
    body = {
        "type": "/problems/curve-graduated",
        "title": "Conflict",
        "status": 409,
        "detail": exc.message,
        "instance": request.url.path,
        "pool": exc.pool,
    }
    return OrjsonResponse(body, status_code=409, media_type=PROBLEM_JSON)


@router.get(
    "/{token_id}/quote",
    response_model=QuoteOut,
    summary="Quote a trade on the token's bonding curve",
    responses=_RESPONSES,
    description=(
        "What a buy or a sell of `amount` would do on the curve as indexed now: amounts in and out, the fee "
        "of the next block (a launch fee included), the price before and after, the price impact, any refund "
        "of a buy that sells out the curve, and `min_out` for `slippage_bps`. Public; writes nothing."
    ),
)
async def get_quote(
    request: Request,
    token_id: TokenId,
    session: SessionDep,
    side: Annotated[Literal["buy", "sell"], Query()],
    amount: Annotated[str, Query(min_length=1, max_length=78, pattern=AMOUNT_PATTERN, description=AMOUNT_DOC)],
    unit: Annotated[Literal["native", "token"] | None, Query()] = None,
    slippage_bps: Annotated[int, Query(ge=0, le=MAX_SLIPPAGE_BPS)] = 100,
):
    amount_units = parse_amount(amount, "query.amount")
    source = await quote_source(session, token_id) if could_be_id(token_id) else None
    try:
        market, result = quote_market(
            source, Side(side), amount_units, unit=Unit(unit) if unit else None, amount_field="query.amount"
        )
    except CurveGraduated as exc:
        return _graduated(request, exc)
    body = quote_out(result, slippage_bps=slippage_bps, curve=market.curve_address, token_address=market.token_address)
    return OrjsonResponse(body.model_dump(mode="json"))


@router.post(
    "/{token_id}/trades/build",
    response_model=TradeTxOut,
    summary="Build an unsigned trade transaction for the trader's wallet",
    responses=_RESPONSES,
    description=(
        "The transaction that performs the quoted trade, for the trader's wallet to sign and send: "
        "`from`, `to`, `data`, `value` and `gas` as EIP-1193 `eth_sendTransaction` takes them "
        "(`value_wei` repeats the value in decimal). The curve reverts with `Slippage` when the trade "
        "would give less than `min_out` and with `Expired` after `deadline`. Public; nothing is signed "
        "or stored, and no node is asked (the gas limit is fixed per kind, with a margin)."
    ),
)
async def build_trade(
    request: Request, token_id: TokenId, body: TradeBuildRequest, session: SessionDep, container: ContainerDep
):
    trader = normalise_address(Family.EVM, body.trader, "trader")
    amount_units = parse_amount(body.amount)
    source = await quote_source(session, token_id) if could_be_id(token_id) else None
    if source is not None and CHAINS[source.token.chain].family is not Family.EVM:
        raise NotFound(f"trading on {source.token.chain} curves is not available yet")
    try:
        unit = Unit(body.unit) if body.unit else None
        market, result = quote_market(source, Side(body.side), amount_units, unit=unit)
    except CurveGraduated as exc:
        return _graduated(request, exc)
    token = source.token  # type: ignore[union-attr]  # quote_market raised for None
    cs = container.settings.chains.get(token.chain)
    network = Network(token.network)
    chain_id = cs.chain_id if cs is not None and cs.network == network and cs.chain_id else None
    tx = build_trade_tx(
        result,
        chain_id=chain_id or CHAINS[token.chain].evm_chain_id(network),
        trader=trader,
        curve=market.curve_address,
        slippage_bps=body.slippage_bps,
        deadline=int(time.time()) + body.deadline_s,
    )
    quoted = quote_out(
        result, slippage_bps=body.slippage_bps, curve=market.curve_address, token_address=market.token_address
    )
    return OrjsonResponse(trade_tx_out(tx, quoted).model_dump(mode="json", by_alias=True))
