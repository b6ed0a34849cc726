"""What TokenForge caches, and which committed changes invalidate what.

* :data:`TOKEN` — ``GET /v1/tokens/{id}``, keyed by token id, dropped when the token changes.
* :data:`TOKEN_LIST` — ``GET /v1/tokens`` pages, keyed by their filters and cursor; every
  page goes when any token is created or changes (one generation bump, no key scan). Short
  TTL: a page is cheap to rebuild and changes often.
* :data:`CHAIN_LIST` — ``GET /v1/chains``; its endpoint and key health is reported
  outside the database's token writes, so its TTL is what keeps it fresh; a launch's
  outcome (which spends a deployer's balance) bumps it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenforge.cache.core import Cache, Entry

if TYPE_CHECKING:
    from tokenforge.store.feed import ChangeFeed
    from tokenforge.store.group_commit import Changes

TOKEN = Entry("token", ttl_s=60.0)
TOKEN_LIST = Entry("tokens", ttl_s=5.0, by_generation=True)
CHAIN_LIST = Entry("chains", ttl_s=2.0, by_generation=True)


def install_cache_invalidation(feed: ChangeFeed, cache: Cache) -> None:
    """Subscribe ``cache`` to ``feed``: each committed batch drops the detail of every token
    it created or updated and bumps the list generations, before the writer's ``await``
    returns (so before any stream can report the new state). The deletes in the store run
    in a background task of ``cache`` that logs its failures and retries; the subscriber
    itself only marks keys and never raises."""

    def on_committed(batch: list[Changes]) -> None:
        token_ids = set().union(*(c.token_ids() for c in batch))
        if not token_ids:
            return
        cache.invalidate(TOKEN, token_ids)
        cache.invalidate(TOKEN_LIST)
        if any(c.tokens for c in batch):
            cache.invalidate(CHAIN_LIST)

    feed.subscribe(on_committed)
