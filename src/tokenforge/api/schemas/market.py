"""Response bodies of the market reads (what :mod:`tokenforge.market.analytics` renders).

Amounts in base units are decimal strings; prices, market caps and volumes in native coin
(per WHOLE token for prices) are floats for charts and sorting; ``*_usd`` figures are null
when no USD price of the chain's native coin was ever obtained.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tokenforge.api.schemas.tokens import TokenOut

#: ``GET /v1/tokens/{id}/candles?interval=``
CandleInterval = Literal["1s", "1m", "5m", "15m", "1h", "4h", "1d"]
#: ``GET /v1/tokens?sort=`` (all descending)
TokenSortParam = Literal["created", "market_cap", "volume_24h", "last_trade", "progress"]


class NativePriceOut(BaseModel):
    asset: str
    usd: str = Field(description="USD per native coin, a decimal string")
    as_of: float = Field(description="Unix seconds when the price was obtained")
    age_s: float
    source: str


class ReservesOut(BaseModel):
    virtual_native: str
    virtual_token: str
    native_raised: str
    tokens_left: str


class FeesOut(BaseModel):
    platform_bps: int
    creator_bps: int
    launch_fee_bps: int
    launch_window: int
    window_unit: Literal["seconds", "blocks"]


class MarketOut(BaseModel):
    curve: str
    state: Literal["trading", "graduated"]
    price_native: float
    price_usd: float | None
    market_cap_native: float
    market_cap_usd: float | None
    progress_pct: float
    volume_24h_native: float
    volume_24h_usd: float | None
    price_change_24h_pct: float | None
    trade_count: int
    holder_count: int
    ath_price_native: float
    last_trade_at: str | None
    pool: str | None
    reserves: ReservesOut
    fees: FeesOut
    as_of_block: int
    native_price: NativePriceOut | None


class TokenMarketOut(TokenOut):
    market: MarketOut | None = Field(description="null until the indexer has seen the launch")


class TokenMarketPage(BaseModel):
    items: list[TokenMarketOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class TradeOut(BaseModel):
    tx_id: str
    log_index: int
    block_number: int
    block_time: str
    trader: str
    side: Literal["buy", "sell"]
    native_amount: str = Field(description="buy: paid incl. fee; sell: received after the fee")
    token_amount: str
    fee: str
    price_native: float = Field(description="native per whole token after the trade")


class TradePage(BaseModel):
    items: list[TradeOut]
    next_cursor: str | None


class CandleOut(BaseModel):
    time: int = Field(description="bucket start, unix seconds")
    open: float
    high: float
    low: float
    close: float
    volume_native: str
    volume_token: str
    trades: int


class CandlesOut(BaseModel):
    interval: CandleInterval
    items: list[CandleOut]


class HolderOut(BaseModel):
    address: str
    balance: str
    pct_of_supply: float
    is_creator: bool
    is_curve: bool
    is_pool: bool


class HoldersOut(BaseModel):
    holder_count: int
    items: list[HolderOut]


class ChainVolumeOut(BaseModel):
    chain: str
    native: float
    usd: float | None


class StatsOut(BaseModel):
    tokens: int = Field(description="TokenForge tokens with a market")
    trades: int
    graduations: int
    volume_24h: list[ChainVolumeOut]
    native_prices: dict[str, NativePriceOut | None]
