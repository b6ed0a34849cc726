"""Unsigned curve trades for the trader's own wallet: the platform never signs a trade.

:func:`build_trade_tx` turns a :class:`~tokenforge.market.quotes.Quote` into the call a
wallet sends: ``buy(minTokensOut, deadline)`` with ``value`` = the quoted native amount, or
``sell(tokensIn, minNativeOut, deadline)`` (the curve needs no ERC-20 approval).
:meth:`UnsignedTrade.as_wallet_tx` gives ``from``, ``to``, ``data``, ``value`` and ``gas`` in
0x-hex as EIP-1193 ``eth_sendTransaction`` takes them. No node is asked: the gas limit is
fixed per kind with a margin over what the contract measures (buy 60-111 k, sell 67 k, a
buy that completes the curve and graduates it 2.73 M); the wallet fills in nonce and fees.

The bound ``min_out`` is the quote's output less ``slippage_bps``; the curve reverts with
``Slippage`` when a trade would give less, and with ``Expired`` when it is mined after
``deadline`` (unix seconds: the block timestamp the curve compares).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from tokenforge.market.quotes import Quote, Side

BUY_GAS = 120_000
SELL_GAS = 110_000
#: a buy that takes the last token creates the pool, adds liquidity and burns the LP
COMPLETING_BUY_GAS = 3_200_000
MIN_DEADLINE_S = 10
MAX_DEADLINE_S = 3600

_BUY = function_signature_to_4byte_selector("buy(uint256,uint256)")
_SELL = function_signature_to_4byte_selector("sell(uint256,uint256,uint256)")


@dataclass(frozen=True, slots=True)
class UnsignedTrade:
    """A transaction for the trader to sign and send; amounts in wei / token base units."""

    chain_id: int
    sender: str
    curve: str
    data: str
    value_wei: int
    gas_limit: int
    #: unix seconds after which the curve refuses the trade (``Expired``)
    deadline: int
    #: the slippage bound written into ``data`` (tokens for a buy, wei for a sell)
    min_out: int

    def as_wallet_tx(self) -> dict[str, str]:
        """The ``eth_sendTransaction`` parameters (EIP-1193 quantities in 0x-hex)."""
        return {
            "from": self.sender,
            "to": self.curve,
            "data": self.data,
            "value": hex(self.value_wei),
            "gas": hex(self.gas_limit),
            "chainId": hex(self.chain_id),
        }


def trade_calldata(quote: Quote, min_out: int, deadline: int) -> str:
    """The curve call that performs ``quote`` with the bound ``min_out``, as 0x-hex."""
    if quote.side is Side.BUY:
        data = _BUY + encode(["uint256", "uint256"], [min_out, deadline])
    else:
        data = _SELL + encode(["uint256", "uint256", "uint256"], [quote.amount_in, min_out, deadline])
    return "0x" + data.hex()


def gas_limit(quote: Quote) -> int:
    """The gas limit of the trade. A buy gets the graduating limit when it completes the
    curve, and also when what it leaves is no more than it buys: buys landing before it
    may leave it the last tokens, and the last buy graduates the curve (~2.7 M gas). Only
    the gas used is paid."""
    if quote.side is Side.SELL:
        return SELL_GAS
    if quote.completes_curve or quote.tokens_left_after <= quote.amount_out:
        return COMPLETING_BUY_GAS
    return BUY_GAS


def build_trade_tx(
    quote: Quote, *, chain_id: int, trader: str, curve: str, slippage_bps: int, deadline: int
) -> UnsignedTrade:
    """The unsigned transaction of ``quote`` from ``trader`` (a checksummed address) to
    ``curve``, refused by the curve if it gives less than the quote minus ``slippage_bps``
    or is mined after ``deadline``. Signs nothing and asks no node."""
    min_out = quote.min_out(slippage_bps)
    return UnsignedTrade(
        chain_id=chain_id,
        sender=trader,
        curve=curve,
        data=trade_calldata(quote, min_out, deadline),
        value_wei=quote.amount_in if quote.side is Side.BUY else 0,
        gas_limit=gas_limit(quote),
        deadline=deadline,
        min_out=min_out,
    )
