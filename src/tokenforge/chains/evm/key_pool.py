"""Deployer keys of one EVM chain, used in parallel; a key low on funds stops taking launches.

Launches are spread round-robin over the keys that are enabled. A key whose balance, as
last read by the keeper, is below ``min_balance_wei`` (or that the node refused a launch
for lack of funds, until its balance rises) is disabled and an alert is raised
(a WARNING log line, the ``tokenforge_deployer_low_balance`` gauge, and the key's
entry in ``GET /v1/chains``); it is enabled again once its balance is back above the
threshold. Launches already signed by a disabled key still finish with it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from tokenforge.errors import ErrorCode, PermanentError, TransientError
from tokenforge.observability.metrics import DEPLOYER_BALANCE, DEPLOYER_LOW_BALANCE

log = logging.getLogger(__name__)


def account_from_key(deployer_key: bytes) -> Any:
    if not isinstance(deployer_key, (bytes, bytearray)) or len(deployer_key) != 32:
        raise PermanentError("deployer key must be 32 bytes", code=ErrorCode.INVALID_KEY)
    try:
        return Account.from_key(bytes(deployer_key))
    except Exception:  # noqa: BLE001 - eth-keys refused it; the key is never shown
        raise PermanentError("deployer key is not a valid secp256k1 private key", code=ErrorCode.INVALID_KEY) from None


@dataclass
class DeployerKey:
    account: Any  # eth-account LocalAccount; holds the private key, never printed
    address: str
    enabled: bool = True
    balance_wei: int | None = None
    #: Balance when the node refused a launch for lack of funds; enabled again above it.
    refused_at_wei: int | None = None

    def __repr__(self) -> str:
        return f"DeployerKey({self.address}, enabled={self.enabled})"


class KeyPool:
    def __init__(self, chain: str, deployer_keys: Sequence[bytes], *, min_balance_wei: int = 0) -> None:
        if not deployer_keys:
            raise PermanentError(f"{chain}: no deployer key", code=ErrorCode.INVALID_KEY)
        self.chain = chain
        self.min_balance_wei = min_balance_wei
        self.keys = [DeployerKey(a, a.address) for a in map(account_from_key, deployer_keys)]
        self._by_address = {k.address: k for k in self.keys}
        if len(self._by_address) != len(self.keys):
            raise PermanentError(f"{chain}: the same deployer key is configured twice", code=ErrorCode.INVALID_KEY)
        self._turn = itertools.cycle(range(len(self.keys)))

    @property
    def addresses(self) -> list[str]:
        return [k.address for k in self.keys]

    def get(self, address: str) -> DeployerKey:
        try:
            return self._by_address[address]
        except KeyError:
            raise PermanentError(
                f"{address} is not a deployer key of {self.chain}", code=ErrorCode.UNKNOWN_SIGNER
            ) from None

    def next(self) -> DeployerKey:
        """The next enabled key, round-robin. TransientError ``no_funded_key`` if none is."""
        for _ in range(len(self.keys)):
            key = self.keys[next(self._turn)]
            if key.enabled:
                return key
        raise TransientError(
            f"every deployer key of {self.chain} is below its minimum balance; fund one of {', '.join(self.addresses)}",
            code=ErrorCode.NO_FUNDED_KEY,
            retry_after_s=5.0,
        )

    def record_balance(self, address: str, balance_wei: int, *, low: bool = False) -> None:
        """Records a balance read; ``low=True`` when the node refused a launch for lack of
        funds (the key is disabled whatever the threshold)."""
        key = self.get(address)
        key.balance_wei = balance_wei
        if low:
            key.refused_at_wei = balance_wei
        elif key.refused_at_wei is not None:
            if balance_wei > key.refused_at_wei:
                key.refused_at_wei = None  # funded since
            else:
                low = True
        low = low or (self.min_balance_wei > 0 and balance_wei < self.min_balance_wei)
        if low and key.enabled:
            log.warning(
                "deployer key %s on %s holds %d wei (minimum %d wei): it takes no launches until funded",
                address,
                self.chain,
                balance_wei,
                self.min_balance_wei,
            )
        elif not low and not key.enabled:
            log.info(
                "deployer key %s on %s is funded again (%d wei): taking launches", address, self.chain, balance_wei
            )
        key.enabled = not low
        DEPLOYER_BALANCE.labels(self.chain, address).set(balance_wei)
        DEPLOYER_LOW_BALANCE.labels(self.chain, address).set(1 if low else 0)

    def health(self) -> list[dict]:
        return [
            {
                "address": k.address,
                "role": "deployer",
                "balance_base_units": None if k.balance_wei is None else str(k.balance_wei),
                "enabled": k.enabled,
                "alert": None if k.enabled else "balance below minimum; fund this key",
            }
            for k in self.keys
        ]
