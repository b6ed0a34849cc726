"""Every Prometheus metric of TokenForge, in one place.

``deploy/`` alert rules and dashboards query exactly these names; modules that count
import the object from here. Gauges say how several processes' values merge in
prometheus-client's multiprocess mode (``multiprocess_mode``; ``live*`` modes forget a
process once it is gone); counters and histograms are summed over every process.

Importing this module creates the metrics, so in a process that shares a multiprocess
directory :func:`tokenforge.observability.prometheus.setup_metrics` must have run first.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATE = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)

# -- HTTP (api/middleware.py) ------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "tokenforge_http_requests_total",
    "HTTP requests answered, by route template (unmatched: no route), method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "tokenforge_http_request_duration_seconds",
    "Time from request to response start, by route template and method",
    ["route", "method"],
    buckets=_FAST,
)

# -- inbound rate limits (api/ratelimit.py) -----------------------------------------------
RATE_LIMITED = Counter(
    "tokenforge_rate_limited_total",
    "Requests refused with 429, by budget (reads|writes|signin) and scope (ip|identity)",
    ["budget", "scope"],
)
RATE_LIMIT_UNCHECKED = Counter(
    "tokenforge_rate_limit_unchecked_total",
    "Requests let through without a rate limit check because the limit store (Redis) was unreachable",
)
SIGNIN_FAILURES_UNAUDITED = Counter(
    "tokenforge_signin_failures_unaudited_total",
    "Failed sign-ins over the per-process audit budget: counted here instead of one audit entry each",
)

# -- launches and job states (observability/job_metrics.py) ------------------------------
LAUNCHES = Counter(
    "tokenforge_launches_total", "Launches by chain and outcome (accepted|confirmed|failed|dead)", ["chain", "outcome"]
)
JOB_STATE_SECONDS = Histogram(
    "tokenforge_job_state_seconds",
    "Time a job spent in a state before its next transition (both seen by the same process)",
    ["chain", "state"],
    buckets=_STATE,
)
JOB_STEPS = Counter("tokenforge_job_steps_total", "Job steps handled", ["outcome"])
JOB_STEP_SECONDS = Histogram(
    "tokenforge_job_step_seconds", "Time to handle one job step", buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.5, 1, 5, 30)
)

# -- backlog (observability/backlog.py, jobs/sweeper.py) ---------------------------------
# Every sampling process reads the same broker and database: the latest sample wins.
QUEUE_DEPTH = Gauge(
    "tokenforge_queue_depth",
    "Messages ready in the broker, by topic",
    ["topic"],
    multiprocess_mode="livemostrecent",
)
OUTBOX_PENDING = Gauge(
    "tokenforge_outbox_pending", "Outbox rows due and not yet sent", multiprocess_mode="livemostrecent"
)
OUTBOX_LAG = Gauge(
    "tokenforge_outbox_lag_seconds",
    "Age of the oldest due outbox row not yet sent (0 when none)",
    multiprocess_mode="livemostrecent",
)
OUTBOX_STUCK = Gauge(
    "tokenforge_outbox_stuck_rows",
    "Outbox rows due for longer than the stale time and unsent",
    multiprocess_mode="livemostrecent",
)
SWEEPER_REENQUEUED = Counter("tokenforge_sweeper_reenqueued_total", "Jobs the sweeper re-enqueued")

# -- chains (chains/rpc/pool.py, chains/evm/*, chains/solana/payer.py) -------------------
RPC_REQUESTS = Counter(
    "tokenforge_rpc_requests_total",
    "JSON-RPC requests sent, by chain, redacted endpoint label and outcome (ok|error)",
    ["chain", "endpoint", "outcome"],
)
RPC_DURATION = Histogram(
    "tokenforge_rpc_request_duration_seconds",
    "JSON-RPC request latency by chain and redacted endpoint label",
    ["chain", "endpoint"],
    buckets=_FAST,
)
# Breakers are per process: open on the host if open in any live process.
RPC_BREAKER_OPEN = Gauge(
    "tokenforge_rpc_breaker_open",
    "1 while an endpoint's circuit breaker is open (any live process)",
    ["chain", "endpoint"],
    multiprocess_mode="livemax",
)
NONCE_GAPS_FILLED = Counter(
    "tokenforge_nonce_gaps_filled_total", "Nonce gaps filled with a no-op transaction", ["chain"]
)
NONCE_RESYNCS = Counter(
    "tokenforge_nonce_resyncs_total", "Nonce cursor moves to match the chain", ["chain", "direction"]
)
TX_REPLACEMENTS = Counter(
    "tokenforge_tx_replacements_total", "Stuck launch transactions replaced with higher fees", ["chain"]
)
DEPLOYER_BALANCE = Gauge(
    "tokenforge_deployer_balance_base_units",
    "Last balance read of a deployer key or Solana payer, in base units (wei, lamports)",
    ["chain", "key"],
    multiprocess_mode="livemostrecent",
)
DEPLOYER_LOW_BALANCE = Gauge(
    "tokenforge_deployer_low_balance",
    "1 while a deployer key or payer holds less than its chain's minimum (it takes no launches)",
    ["chain", "key"],
    multiprocess_mode="livemax",
)

# -- cache and dependencies --------------------------------------------------------------
CACHE_REQUESTS = Counter(
    "tokenforge_cache_requests_total", "Cache look-ups by cache and result (hit|miss|error)", ["cache", "result"]
)
# The worst view of any live process: one process that cannot reach a dependency shows.
DEPENDENCY_UP = Gauge(
    "tokenforge_dependency_up",
    "Last readiness check of a dependency: 1 ok, 0.5 degraded, 0 down (worst live process)",
    ["dependency"],
    multiprocess_mode="livemin",
)

# -- market indexer (market/indexer/runner.py) -------------------------------------------
# Only the chain's leader indexes; its latest sample wins.
INDEX_HEAD_LAG = Gauge(
    "tokenforge_index_head_lag_blocks",
    "Blocks between the indexable head (head minus confirmations) and the indexer's checkpoint",
    ["chain"],
    multiprocess_mode="livemostrecent",
)
INDEX_TRADES = Counter("tokenforge_index_trades_total", "Trades the market indexer wrote", ["chain"])
INDEX_REORGS = Counter("tokenforge_index_reorgs_total", "Reorgs the market indexer rolled back", ["chain"])
