"""Bodies of the trading routes: quotes and unsigned trade transactions (amounts as strings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tokenforge.market.quotes import MAX_SLIPPAGE_BPS, Quote
from tokenforge.market.trade_tx import MAX_DEADLINE_S, MIN_DEADLINE_S, UnsignedTrade

#: A positive amount in base units as decimal digits (uint256 at most).
AMOUNT_PATTERN = r"^[0-9]{1,78}$"
AMOUNT_DOC = (
    "Base units as a string of digits, > 0: wei with `unit=native`, token base units with `unit=token`. "
    "Default unit: native for a buy, token for a sell (a sell is always in tokens)"
)


class QuoteOut(BaseModel):
    side: Literal["buy", "sell"]
    unit: Literal["native", "token"]
    amount_in: str = Field(description="buy: wei to send, fee included; sell: token base units sold")
    amount_out: str = Field(description="buy: token base units received; sell: wei received after the fee")
    fee: str = Field(description="The fee in wei")
    fee_bps: int = Field(description="The fee rate of the next block (includes any launch fee)")
    refund: str = Field(description="buy: wei sent back because the curve has fewer tokens left")
    completes_curve: bool = Field(description="This buy takes the last token: the curve graduates in it")
    price_before_native: float = Field(description="Native coin per whole token before the trade")
    price_after_native: float
    price_impact_bps: int = Field(description="How far the trade moves the marginal price, in basis points")
    slippage_bps: int
    min_out: str = Field(description="`amount_out` less `slippage_bps`: the least the trade accepts")
    as_of_block: int = Field(description="The indexed block the curve's state is taken from")
    curve: str
    token_address: str


class TradeBuildRequest(BaseModel):
    """An unsigned trade for the trader's own wallet to sign and send."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "side": "buy",
                    "amount": "100000000000000000",
                    "trader": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                    "slippage_bps": 100,
                    "deadline_s": 300,
                }
            ]
        },
    )

    side: Literal["buy", "sell"]
    amount: str = Field(min_length=1, max_length=78, pattern=AMOUNT_PATTERN, description=AMOUNT_DOC)
    unit: Literal["native", "token"] | None = None
    trader: str = Field(
        min_length=42,
        max_length=42,
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="The wallet that signs and sends the transaction (EIP-55 checksum checked when mixed case)",
    )
    slippage_bps: int = Field(default=100, ge=0, le=MAX_SLIPPAGE_BPS)
    deadline_s: int = Field(
        default=300,
        ge=MIN_DEADLINE_S,
        le=MAX_DEADLINE_S,
        description="Seconds from now until the curve refuses the trade (`Expired`)",
    )


class TradeTxOut(BaseModel):
    """``from``, ``to``, ``data``, ``value`` and ``gas`` go to ``eth_sendTransaction`` as they are."""

    model_config = ConfigDict(populate_by_name=True)

    chain_id: int
    sender: str = Field(alias="from")
    to: str = Field(description="The token's bonding curve")
    data: str
    value: str = Field(description="Wei to send, 0x-hex (EIP-1193 quantity)")
    value_wei: str = Field(description="The same value in decimal")
    gas: str = Field(description="Gas limit, 0x-hex")
    gas_limit: int
    deadline: int = Field(description="Unix seconds; mined later the trade reverts with `Expired`")
    min_out: str = Field(description="The slippage bound in `data`: tokens (buy) or wei (sell)")
    quote: QuoteOut


def quote_out(quote: Quote, *, slippage_bps: int, curve: str, token_address: str) -> QuoteOut:
    return QuoteOut(
        side=quote.side.value,
        unit=quote.unit.value,
        amount_in=str(quote.amount_in),
        amount_out=str(quote.amount_out),
        fee=str(quote.fee),
        fee_bps=quote.fee_bps,
        refund=str(quote.refund),
        completes_curve=quote.completes_curve,
        price_before_native=quote.price_before_native,
        price_after_native=quote.price_after_native,
        price_impact_bps=quote.price_impact_bps,
        slippage_bps=slippage_bps,
        min_out=str(quote.min_out(slippage_bps)),
        as_of_block=quote.as_of_block,
        curve=curve,
        token_address=token_address,
    )


def trade_tx_out(tx: UnsignedTrade, quote: QuoteOut) -> TradeTxOut:
    return TradeTxOut(
        chain_id=tx.chain_id,
        sender=tx.sender,
        to=tx.curve,
        data=tx.data,
        value=hex(tx.value_wei),
        value_wei=str(tx.value_wei),
        gas=hex(tx.gas_limit),
        gas_limit=tx.gas_limit,
        deadline=tx.deadline,
        min_out=str(tx.min_out),
        quote=quote,
    )
