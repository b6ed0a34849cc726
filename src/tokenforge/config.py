"""All settings in one object, read from ``TOKENFORGE_*`` environment variables.

Only :mod:`tokenforge.bootstrap` turns settings into adapters.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tokenforge.domain.chains import CHAINS, Family, Network

GWEI = 10**9
#: Calls per second to one endpoint of a testnet or mainnet unless its ``max_rps`` says otherwise.
DEFAULT_PUBLIC_RPC_RPS = 25.0


#: Settings whose URL may carry a password: their ``repr`` shows ``user:***@``.
_URLS_WITH_PASSWORDS = frozenset({"database_url", "broker_url", "cache_url", "kms_endpoint_url"})


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """``url`` for messages and ``repr``: any password (or a user name standing alone, which
    may be a token) replaced by ``***`` and, unless
    ``keep_path``, everything after the host replaced by ``…`` (API keys live there)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    netloc, slash, tail = rest.partition("/")
    for mark in "?#":  # a query or fragment straight after the host
        if mark in netloc and not slash:
            netloc, _, more = netloc.partition(mark)
            slash, tail = mark, more
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"  # a lone name may be a token
    if not keep_path and (slash or tail):
        return f"{scheme}://{netloc}/…"
    return f"{scheme}://{netloc}{slash}{tail}"


class EndpointSettings(BaseModel):
    """One JSON-RPC endpoint of a chain. The URL may carry an API key: it is never logged
    (its ``repr`` shows the host only)."""

    # hide_input_in_errors: a URL may carry an API key; a validation error must not echo it
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = Field(pattern=r"^https?://")
    #: Relative share of first-choice traffic among healthy endpoints.
    weight: int = Field(default=1, ge=1, le=1000)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: Client-side budget of calls per second to this endpoint, so the provider never bans
    #: us (calls over it wait their turn). Default: none on local networks,
    #: :data:`DEFAULT_PUBLIC_RPC_RPS` on testnets and mainnets.
    max_rps: float | None = Field(default=None, gt=0, le=100_000)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, redact_url(value, keep_path=False) if name == "url" else value


class MarketSettings(BaseModel):
    """A chain's market: the bonding curve's terms, the AMM it graduates to, its indexer.

    Amounts are integers in base units; ``None`` takes the chain's default from
    :data:`tokenforge.domain.curve.CHAIN_DEFAULTS` (docs/market.md says why each).
    The curve terms are written into the factory at its deployment and kept in step at
    start (the first deployer key owns the factory); each token keeps the terms it was
    launched with."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    #: The curve's initial virtual native reserve (pump.fun: 30 SOL).
    virtual_native_base_units: int | None = Field(default=None, gt=0, lt=2**112)
    platform_fee_bps: int = Field(default=95, ge=0, le=500)
    creator_fee_bps: int = Field(default=30, ge=0, le=500)
    #: Native kept by the platform out of the raise when a curve graduates.
    migration_fee_base_units: int | None = Field(default=None, ge=0, lt=2**112)
    #: Who receives the platform's fees; default: the first deployer key's address.
    fee_recipient: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    #: Bounds of a launch's decaying launch fee (per launch: start fee and window).
    max_launch_fee_bps: int = Field(default=9000, ge=0, le=9900)
    max_launch_window_s: int = Field(default=60, ge=0, le=3600)
    max_launch_window_blocks: int = Field(default=30, ge=0, le=300)
    #: Uniswap V2 on this chain (required on testnets and mainnets; deployed from the
    #: published artifacts on embedded and local networks).
    uniswap_factory: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    uniswap_router: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    weth: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    #: The pair contract's init code hash of that Uniswap V2 deployment (forks differ).
    pair_init_code_hash: str = Field(
        default="0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f", pattern=r"^0x[0-9a-fA-F]{64}$"
    )
    # -- indexer ---------------------------------------------------------------------
    #: Blocks below the head the indexer stays (0 = index the head; reorgs roll back).
    index_confirmations: int = Field(default=0, ge=0, le=1000)
    #: First block to index; default: the factory's deployment block.
    index_from_block: int | None = Field(default=None, ge=0)
    #: Most blocks one ``eth_getLogs`` call asks for (providers cap ranges).
    index_batch_blocks: int = Field(default=2000, ge=1, le=100_000)
    #: How often the indexer asks for new blocks when nothing wakes it.
    index_poll_s: float = Field(default=0.5, gt=0, le=60)


class ChainSettings(BaseModel):
    """How one chain is reached and how launches on it are paid for and confirmed.

    Written in ``TOKENFORGE_CHAINS`` as JSON; a bare network name (``"embedded"``) is short
    for ``{"network": "embedded"}``. Amounts are integers in base units (wei, lamports).
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    network: Network = Network.EMBEDDED
    #: JSON-RPC endpoints (required unless ``network`` is ``embedded``); strings or objects.
    endpoints: list[EndpointSettings] = Field(default_factory=list)
    #: Expected chain id (EVM); default: the registry's id for the network. Checked at start.
    chain_id: int | None = Field(default=None, ge=1)
    #: EVM: blocks on top of the launch block before it counts (1 = included).
    confirmations: int = Field(default=1, ge=1, le=1000)
    #: Solana: the commitment a launch must reach.
    commitment: Literal["processed", "confirmed", "finalized"] = "confirmed"

    # -- circuit breakers -------------------------------------------------------------
    breaker_failures: int = Field(default=3, ge=1, le=100)
    breaker_reset_s: float = Field(default=10.0, gt=0, le=3600)

    # -- keys ------------------------------------------------------------------------
    #: Deployer keys used in parallel (EVM: one nonce sequence each).
    deployer_keys: int = Field(default=1, ge=1, le=64)
    #: A key holding less than this stops taking launches and raises an alert (0 = off).
    min_balance_base_units: int = Field(default=0, ge=0)
    #: Local networks only: top keys up to this balance at start (Hardhat, devnet).
    dev_fund_base_units: int = Field(default=0, ge=0)

    # -- EVM fees and stuck transactions ---------------------------------------------
    #: Use ``gasPrice`` transactions instead of EIP-1559 (chains without a base fee).
    legacy_fees: bool = False
    #: Never pay more than this per gas, replacements included.
    max_fee_per_gas_wei: int = Field(default=500 * GWEI, ge=1)
    #: Fixed priority fee; default: the median reward of recent blocks.
    priority_fee_wei: int | None = Field(default=None, ge=0)
    gas_limit: int = Field(default=300_000, ge=21_000, le=30_000_000)
    #: A transaction not mined after this long is replaced with higher fees (same nonce).
    stuck_after_s: float = Field(default=60.0, gt=0)
    #: Each replacement raises both fee fields by at least this much (geth needs >= 10).
    fee_bump_percent: int = Field(default=15, ge=10, le=500)
    #: A nonce below the signer's next one, unused for this long, is filled with a no-op.
    nonce_gap_s: float = Field(default=30.0, gt=0)
    #: How often nonce gaps, drift and key balances are checked.
    keeper_interval_s: float = Field(default=5.0, gt=0)
    #: Factory address to use instead of deploying one from the first key (EVM).
    factory_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")

    #: Launches of this chain one worker process handles at once; default:
    #: ``worker_concurrency``.
    prefetch: int | None = Field(default=None, ge=1, le=1024)

    # -- Solana fees -----------------------------------------------------------------
    #: The chain's market (bonding curve, AMM, indexer).
    market: MarketSettings = Field(default_factory=MarketSettings)

    compute_unit_price_micro_lamports: int = Field(default=0, ge=0, le=10**9)
    compute_unit_limit: int | None = Field(default=None, ge=1, le=1_400_000)

    @field_validator("endpoints", mode="before")
    @classmethod
    def _endpoint_strings(cls, value):
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"url": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _endpoints_when_remote(self) -> ChainSettings:
        if self.network is not Network.EMBEDDED and not self.endpoints:
            raise ValueError(f"network {self.network.value!r} needs at least one endpoint")
        if self.network is Network.EMBEDDED and self.endpoints:
            raise ValueError("the embedded network takes no endpoints")
        return self


class PriceProviderSettings(BaseModel):
    """One source of native coin prices in USD (``tokenforge.market.price_providers``).
    ``api_key`` is sent as a header, never in the URL, and never logged."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: ``coingecko`` (``GET {url}/simple/price``) or ``coinbase`` (``GET {url}/v2/prices/ETH-USD/spot``).
    kind: Literal["coingecko", "coinbase"]
    url: str = Field(pattern=r"^https?://[^/?#@\s]+(/[^?#@\s]*)?$")
    api_key: SecretStr | None = None


def _default_price_providers() -> list[PriceProviderSettings]:
    return [
        PriceProviderSettings(kind="coingecko", url="https://api.coingecko.com/api/v3"),
        PriceProviderSettings(kind="coinbase", url="https://api.coinbase.com"),
    ]


class Settings(BaseSettings):
    """Every setting. Secrets never show in ``repr``/``str``: ``master_key`` is a
    ``SecretStr``, URLs that may carry a password show ``user:***@``, endpoint URLs only
    their host."""

    model_config = SettingsConfigDict(
        env_prefix="TOKENFORGE_", extra="ignore", validate_assignment=True, hide_input_in_errors=True
    )

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in _URLS_WITH_PASSWORDS and isinstance(value, str) else value

    #: Where the embedded default keeps its SQLite file, chain state and sealed keys.
    data_dir: Path = Path(".tokenforge")
    #: SQLAlchemy async URL; default: a SQLite file in ``data_dir``.
    database_url: str | None = None
    #: Master keyfile for envelope encryption; default ``data_dir/master.key``.
    master_keyfile: Path | None = None

    #: Where ``tokenforge serve`` listens unless ``--host`` / ``--port`` are given.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    #: Message broker: ``memory://`` (in-process, the embedded default) or
    #: ``amqp://user:pass@host:5672/vhost`` (RabbitMQ). May carry a password: never logged.
    broker_url: str = Field(default="memory://", pattern=r"^(memory://|amqps?://)")
    #: Cache for hot reads: ``memory://`` (per process) or ``redis://host:6379/0``.
    cache_url: str = Field(default="memory://", pattern=r"^(memory://|rediss?://|none://)")
    #: Chains a worker process serves (``tokenforge worker --chains``); default: all.
    worker_chains: list[str] | None = None
    #: Launches of one chain a worker process handles at once (its broker prefetch);
    #: a chain's ``prefetch`` overrides it.
    worker_concurrency: int = Field(default=64, ge=1, le=1024)
    #: How long a stopping process waits for in-flight steps before handing them back.
    drain_timeout_s: float = Field(default=20.0, gt=0, le=600)
    #: Where relay, worker and sweeper processes serve /healthz, /readyz and /metrics
    #: (0 = a free port, printed at start; None = not served).
    health_port: int | None = Field(default=None, ge=0, le=65535)
    #: Prometheus multiprocess directory shared by the processes of one host; default:
    #: ``PROMETHEUS_MULTIPROC_DIR`` if set, else single-process metrics.
    metrics_dir: Path | None = None
    #: OpenTelemetry span exporter: ``none`` (default), ``console`` or ``otlp``
    #: (``OTEL_EXPORTER_OTLP_ENDPOINT`` and the other standard variables apply).
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    # -- who may do what (docs/security.md) --------------------------------------------
    #: The address people reach this deployment at; sign-in messages must name its host
    #: (``domain``) and an URI under it. Default: ``http://{host}:{port}``.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#@\s]+/?$")
    #: Lifetime of a wallet sign-in session.
    session_ttl_s: float = Field(default=24 * 3600.0, gt=0, le=30 * 24 * 3600)
    #: How long a sign-in nonce may wait for its signed message.
    signin_nonce_ttl_s: float = Field(default=300.0, gt=0, le=3600)
    #: Wallets (EVM addresses, Solana keys) whose sign-in sessions get the operator role.
    operator_wallets: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Rate limits on: off only for benchmarks that measure raw throughput.
    rate_limits_enabled: bool = True
    #: Budgets in the ``limits`` notation (``"600/minute"``, ``"10/second;1000/hour"``),
    #: counted in a sliding window per client IP and per identity (API key, session).
    rate_limit_reads_ip: str = "1200/minute"
    rate_limit_reads_identity: str = "2400/minute"
    rate_limit_writes_ip: str = "120/minute"
    rate_limit_writes_identity: str = "60/minute"
    #: Sign-in attempts (nonce and verify requests) per client IP.
    rate_limit_signin_ip: str = "20/minute"
    #: Proxies (CIDRs) whose ``X-Forwarded-For`` names the client; others are the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Where the master key of envelope encryption lives: ``local`` (``master_key`` or
    #: ``master_keyfile``) or ``aws-kms`` (``kms_key_id``).
    key_backend: Literal["local", "aws-kms"] = "local"
    #: The local master key as base64 of 32 bytes (instead of a keyfile); a secret.
    master_key: SecretStr | None = None
    #: AWS KMS key (id, ARN or alias) that wraps data keys when ``key_backend=aws-kms``.
    kms_key_id: str | None = None
    kms_region: str = "us-east-1"
    #: KMS endpoint to use instead of AWS's (a VPC endpoint, or a test server).
    kms_endpoint_url: str | None = None

    #: A webhook call not answered within this long counts as failed.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    #: Delivery attempts of one webhook event before it is given up (backoff in between).
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    #: Backoff between webhook attempts: exponential from the base, with full jitter, capped
    #: (the defaults spread 8 attempts over up to ~40 minutes of receiver downtime).
    webhook_retry_base_s: float = Field(default=10.0, gt=0, le=3600)
    webhook_retry_max_s: float = Field(default=1800.0, gt=0, le=86400)
    #: Webhook calls per second to one destination host, from one process.
    webhook_max_rps_per_host: float = Field(default=10.0, gt=0, le=10_000)
    #: Networks (CIDRs) outbound calls may reach although they are not public (loopback,
    #: private ranges): for a webhook receiver on a local network. Empty in production.
    outbound_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Where USD figures come from: ``fixed`` (``price_fixed_usd``, no call out; the embedded
    #: default) or ``http`` (``price_providers`` in order, cached, with failover).
    price_feed: Literal["fixed", "http"] = "fixed"
    #: USD price of each native coin for the fixed feed (``{"ETH": 3000.0, ...}``), each > 0.
    price_fixed_usd: dict[str, float] = Field(default_factory=lambda: {"ETH": 3000.0, "BNB": 600.0, "SOL": 150.0})
    #: Price sources of the http feed, tried in order, as a JSON list of
    #: ``{"kind": "coingecko"|"coinbase", "url": "https://...", "api_key": "..."}``.
    price_providers: list[PriceProviderSettings] = Field(default_factory=_default_price_providers, min_length=1)
    #: A price younger than this is served without asking a provider.
    price_ttl_s: float = Field(default=60.0, gt=0, le=86400)
    #: A price older than this is still served (with its age) but a refresh is awaited briefly first.
    price_stale_max_s: float = Field(default=3600.0, gt=0, le=30 * 86400)
    #: A price provider not answered within this long counts as failed.
    price_timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: Calls per second to one price provider, from one process.
    price_max_rps: float = Field(default=1.0, gt=0, le=100)
    #: How long the market indexer keeps 1s candles (longer intervals are kept for ever).
    market_candle_1s_retention_s: float = Field(default=86400.0, ge=60, le=365 * 86400)

    #: Origins (``https://app.example``) whose pages may call this API from a browser.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: A client that has not sent its request headers within this long is disconnected.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: How often worker processes write RPC endpoint and key health to the database; an
    #: entry older than three intervals is reported as stale (``GET /v1/chains``).
    chain_health_interval_s: float = Field(default=10.0, gt=0, le=3600)
    #: Attempts before a job is dead-lettered.
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    #: Delay between confirmation checks of a submitted transaction.
    confirm_poll_s: float = Field(default=0.2, gt=0)
    #: Checks of a pending transaction before its recorded bytes are broadcast again
    #: (checks back off from ``confirm_poll_s`` to 2 s; 200 is about six minutes).
    max_confirm_checks: int = Field(default=200, ge=1, le=100_000)
    #: A job leased by a worker is not touched by another one for this long.
    job_lease_s: float = Field(default=60.0, gt=0)
    #: How often the sweeper looks for unfinished jobs that nothing will advance.
    sweep_interval_s: float = Field(default=10.0, gt=0)
    #: An unleased job unchanged this long with no pending message is re-enqueued.
    sweep_stale_s: float = Field(default=60.0, gt=0)
    #: Longest pause between tries while the database is unavailable.
    outage_max_s: float = Field(default=10.0, gt=0, le=300)
    #: Relay poll interval when nothing in its own process wakes it (the API runs in
    #: another process and writes the outbox there).
    relay_poll_s: float = Field(default=0.05, gt=0)
    #: How often an SSE stream re-reads job events written by another process.
    event_poll_s: float = Field(default=0.25, gt=0)
    idempotency_ttl_h: int = Field(default=24, ge=24)
    #: Largest request body the API reads; a larger one is refused with 413.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: A request body not fully received this long after its headers is refused with 408.
    #: The largest body (``max_body_bytes``, 64 KiB) takes about 8 s even at 64 kbit/s; a
    #: longer wait only lets slow clients hold more connections open for less effort.
    body_timeout_s: float = Field(default=10.0, gt=0, le=3600)

    #: Chains this deployment launches on and how each is reached, e.g.
    #: ``{"ethereum": {"network": "testnet", "endpoints": ["https://..."]}, "solana": "embedded"}``
    #: (see :class:`ChainSettings`).
    chains: dict[str, ChainSettings] = Field(default_factory=lambda: {name: ChainSettings() for name in CHAINS})

    #: Fault injection for crash tests only: the worker process exits abruptly at this
    #: point of a launch ("after_sign": signed tx recorded, not broadcast; "after_broadcast":
    #: broadcast, not confirmed). Never set it in production.
    fault_crash_point: Literal["after_sign", "after_broadcast"] | None = None

    #: Python's thread switch interval for server processes (default 5 ms is tuned for
    #: throughput of CPU-bound threads; the DB driver and chains need quick hand-overs).
    gil_switch_interval_s: float = Field(default=0.0005, gt=0, le=0.1)

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("chains", mode="before")
    @classmethod
    def _network_shorthand(cls, value):
        if isinstance(value, dict):
            return {k: {"network": v} if isinstance(v, (str, Network)) else v for k, v in value.items()}
        return value

    @field_validator("chains")
    @classmethod
    def _known_chains(cls, value: dict[str, ChainSettings]) -> dict[str, ChainSettings]:
        unknown = set(value) - set(CHAINS)
        if unknown:
            raise ValueError(f"unknown chains: {', '.join(sorted(unknown))}")
        for name, chain in value.items():
            if CHAINS[name].family is Family.SOLANA and chain.legacy_fees:
                raise ValueError(f"{name}: legacy_fees applies to EVM chains only")
        return value

    @field_validator("operator_wallets", "trusted_proxies", "outbound_allowed_networks", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value):
        """A JSON list or a comma-separated string."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [c.strip() for c in value.split(",") if c.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        """Exact origins (``https://app.example[:port]``), as browsers send them; no ``*``:
        these origins make credentialed calls."""
        origins = []
        for origin in value:
            normal = origin.strip().rstrip("/").lower()
            if not re.fullmatch(r"https?://[a-z0-9.\-\[\]:]+", normal):
                raise ValueError(f"cors_origins: {origin!r} is not an origin like https://app.example (no * or path)")
            origins.append(normal)
        return origins

    @field_validator(
        "rate_limit_reads_ip",
        "rate_limit_reads_identity",
        "rate_limit_writes_ip",
        "rate_limit_writes_identity",
        "rate_limit_signin_ip",
    )
    @classmethod
    def _rate_limit_notation(cls, value: str) -> str:
        """A budget in the ``limits`` notation, each part allowing at least one request."""
        from limits import parse_many

        try:
            items = parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a budget like '600/minute' or '10/second;1000/hour'") from None
        if any(item.amount < 1 for item in items):
            raise ValueError(f"{value!r} allows no request at all; each part must allow at least 1")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        """Addresses or CIDRs (``10.0.0.0/8``, ``::1``)."""
        import ipaddress

        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP address or CIDR like 10.0.0.0/8") from None
        return value

    @field_validator("worker_chains", mode="before")
    @classmethod
    def _chain_list(cls, value):
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()]
        return value

    @field_validator("price_fixed_usd")
    @classmethod
    def _positive_prices(cls, value: dict[str, float]) -> dict[str, float]:
        """Asset symbols upper-cased; every price a finite number above 0."""
        import math

        for asset, usd in value.items():
            if not (math.isfinite(usd) and usd > 0):
                raise ValueError(f"price_fixed_usd: the price of {asset} must be a number > 0")
        return {asset.upper(): usd for asset, usd in value.items()}

    @model_validator(mode="after")
    def _price_ages_ordered(self) -> Settings:
        if self.price_stale_max_s < self.price_ttl_s:
            raise ValueError("price_stale_max_s must be at least price_ttl_s")
        return self

    @model_validator(mode="after")
    def _worker_chains_configured(self) -> Settings:
        unknown = set(self.worker_chains or ()) - set(self.chains)
        if unknown:
            raise ValueError(f"worker_chains names chains that are not configured: {', '.join(sorted(unknown))}")
        return self

    def worker_prefetch(self) -> dict[str, int]:
        """The chains a worker of this process serves, with each one's prefetch."""
        chains = self.worker_chains or list(self.chains)
        return {c: self.chains[c].prefetch or self.worker_concurrency for c in chains}

    def network(self, chain: str) -> Network:
        return self.chains[chain].network

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tokenforge.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
