"""The Solana curve program's events → :mod:`tokenforge.market.events` records.

The program (``programs/curve/curve.c``) writes one ``sol_log_data`` record per event; the
runtime logs it as ``Program data: <base64 field> <base64 field> …``. The first field is a
tag naming the event and its layout version:

* ``TFc1`` created → :class:`~tokenforge.market.events.Launched`
* ``TFt1`` trade → :class:`~tokenforge.market.events.Traded` (reserves after the trade)
* ``TFg1`` graduated → :class:`~tokenforge.market.events.Graduated`
* ``TFd1`` sold out, ``TFf1`` fees claimed, ``TFs1`` pool swap: not market records (the
  EVM indexer does not index pool swaps either); skipped.

:func:`decode` reads the log lines of one successful transaction. Only records written while
the curve program itself is the running program count: the runtime prefixes each program's
logs with ``Program <id> invoke [depth]`` and ends them with ``Program <id> success``, and
any program can log a line that looks like an event, so the decoder follows that stack. A
record whose fields do not have the layout's sizes is skipped and logged (a newer layout
this version does not know). Each record's ``log_index`` is its place among the
transaction's records, which with the signature makes it idempotent.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import struct
from collections.abc import Callable, Sequence

from solders.pubkey import Pubkey

from tokenforge.market.events import Graduated, Launched, MarketRecord, Position, Traded

log = logging.getLogger(__name__)

DATA_PREFIX = "Program data: "
# the runtime's own lines (a program's messages always start "Program log: " or "Program data: ")
_INVOKE = re.compile(r"^Program ([1-9A-HJ-NP-Za-km-z]{32,44}) invoke \[\d+\]$")
_LEFT = re.compile(r"^Program ([1-9A-HJ-NP-Za-km-z]{32,44}) (success|failed: .*)$")


def decode(
    logs: Sequence[str], program: Pubkey, at: Callable[[int], Position], curve_of: Callable[[Pubkey], Pubkey]
) -> list[MarketRecord]:
    """The market records in ``logs`` of one transaction; ``at(i)`` is the position of its
    ``i``-th record, ``curve_of(mint)`` the curve PDA of a mint."""
    stack: list[str] = []
    ours = str(program)
    out: list[MarketRecord] = []
    for line in logs:
        if (entered := _INVOKE.match(line)) is not None:
            stack.append(entered.group(1))
        elif _LEFT.match(line) is not None and stack:
            stack.pop()
        elif line.startswith(DATA_PREFIX) and stack and stack[-1] == ours:
            fields = _fields(line)
            if fields is None:
                continue
            record = _record(fields, at, curve_of, len(out))
            if record is not None:
                out.append(record)
    return out


def _fields(line: str) -> list[bytes] | None:
    try:
        return [base64.b64decode(part, validate=True) for part in line[len(DATA_PREFIX) :].split()]
    except (binascii.Error, ValueError):
        return None


def _record(
    fields: list[bytes], at: Callable[[int], Position], curve_of: Callable[[Pubkey], Pubkey], index: int
) -> MarketRecord | None:
    tag, sizes = fields[0], [len(f) for f in fields[1:]]
    if tag == b"TFc1" and sizes == [32, 32, 4, 72]:
        mint, creator = Pubkey.from_bytes(fields[1]), Pubkey.from_bytes(fields[2])
        _state, _bump, in_slots, _decimals = fields[3]
        supply, vn0, _raised, _sold, _fees, migration, launched_at, window, pf, cf, lf = struct.unpack(
            "<7QIHHH6x", fields[4]
        )
        return Launched(
            at=at(index),
            token=str(mint),
            curve=str(curve_of(mint)),
            creator=str(creator),
            supply=supply,
            virtual_native0=vn0,
            platform_fee_bps=pf,
            creator_fee_bps=cf,
            launch_fee_bps=lf,
            launch_window=window,
            window_in_blocks=bool(in_slots),
            migration_fee=migration,
            launched_at=launched_at,
        )
    if tag == b"TFt1" and sizes == [32, 32, 41]:
        is_buy, native, tokens, fee, vq, vt = struct.unpack("<B5Q", fields[3])
        return Traded(
            at=at(index),
            curve=str(curve_of(Pubkey.from_bytes(fields[1]))),
            trader=str(Pubkey.from_bytes(fields[2])),
            is_buy=bool(is_buy),
            native_amount=native,
            token_amount=tokens,
            fee=fee,
            virtual_native=vq,
            virtual_token=vt,
        )
    if tag == b"TFg1" and sizes == [32, 32, 24, 8]:
        native, tokens, burnt = struct.unpack("<3Q", fields[3])
        return Graduated(
            at=at(index),
            curve=str(curve_of(Pubkey.from_bytes(fields[1]))),
            pool=str(Pubkey.from_bytes(fields[2])),
            native_liquidity=native,
            token_liquidity=tokens,
            liquidity_burnt=burnt,
            migration_fee=struct.unpack("<Q", fields[4])[0],
        )
    if tag in (b"TFd1", b"TFf1", b"TFs1"):
        return None
    log.warning("skipped a curve program record with an unknown layout", extra={"tag": tag[:8].hex()})
    return None
