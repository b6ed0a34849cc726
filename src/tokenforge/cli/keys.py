"""``tokenforge keys``: addresses to fund, importing and retiring keys, rotating the master key.

Keys stay sealed in the data directory's key store under the configured master key
(``key_backend``: a local keyfile / ``TOKENFORGE_MASTER_KEY``, or AWS KMS); these commands
print addresses and balances only. ``import`` reads the private key from standard input
(never from the command line, where it would land in shell history and the process list).

Every key event is written to the audit log as ``cli:<user>@<host>``: ``import``,
``retire`` and ``rotate-master`` need a migrated database and refuse to act without one;
``list`` creates missing keys and audits them when the database is there (a warning
otherwise: run ``tokenforge migrate`` first).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tokenforge.config import Settings
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.errors import TokenForgeError

keys_app = typer.Typer(
    help="Deployer keys: addresses to fund, balances, import, retire, master key.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def _keystore(settings: Settings):
    from tokenforge.keys.master import open_keystore

    return open_keystore(settings)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(code)


def _audited(settings: Settings, act: Callable[[], T], store: Callable[[], Any] | None = None) -> T:
    """Run ``act`` (sync) with the database open, then audit the key events it caused.

    The database is opened first so nothing happens that could not be audited. ``store``
    returns the key store whose events to write (default: the one ``act`` returned)."""
    from tokenforge.cli.operations import cli_actor, database
    from tokenforge.keys.audit import record_key_events

    async def run() -> T:
        async with database(settings) as sessions:
            result: Any = None
            try:
                result = act()
                return result
            finally:
                keystore = store() if store is not None else getattr(result, "store", None)
                if keystore is not None:
                    await record_key_events(sessions, keystore.drain_events(), actor=cli_actor())

    try:
        return asyncio.run(run())
    except TokenForgeError as exc:
        raise _fail(exc.message) from None


def _record_best_effort(settings: Settings, keystore) -> None:
    events = keystore.drain_events()
    if not events:
        return
    from tokenforge.cli.operations import cli_actor, database
    from tokenforge.keys.audit import record_key_events

    async def run() -> None:
        async with database(settings) as sessions:
            await record_key_events(sessions, events, actor=cli_actor())

    try:
        asyncio.run(run())
    except TokenForgeError as exc:
        err.print(f"[yellow]{len(events)} key event(s) not audited: {exc.message}[/yellow]", highlight=False)
    except Exception as exc:  # noqa: BLE001 - the database is unreachable: said, not fatal
        err.print(f"[yellow]{len(events)} key event(s) not audited ({type(exc).__name__})[/yellow]", highlight=False)


def _addresses(settings: Settings, keystore) -> list[tuple[str, str, str]]:
    """(chain, role, address) for every key the configured chains use."""
    from eth_account import Account
    from solders.keypair import Keypair

    rows = []
    for chain, cs in sorted(settings.chains.items()):
        if CHAINS[chain].family is Family.EVM:
            for i, key in enumerate(keystore.evm_deployer_keys(chain, cs.deployer_keys)):
                rows.append((chain, f"deployer {i}", Account.from_key(key).address))
        else:
            rows.append((chain, "payer", str(Keypair.from_seed(keystore.solana_payer_key(chain)).pubkey())))
    return rows


async def _balance(settings: Settings, chain: str, address: str) -> str:
    from tokenforge.bootstrap import rpc_pool

    cs = settings.chains[chain]
    if not cs.endpoints:
        return "(embedded)"
    pool = rpc_pool(chain, cs)
    try:
        if CHAINS[chain].family is Family.EVM:
            answer = await pool.call("eth_getBalance", [address, "latest"])
            value = int(answer["result"], 16) if "result" in answer else None
            unit = "wei"
        else:
            answer = await pool.call("getBalance", [address])
            value = answer["result"]["value"] if "result" in answer else None
            unit = "lamports"
        return f"{value} {unit}" if value is not None else f"error: {answer.get('error')}"
    except TokenForgeError as exc:
        return f"unreachable ({exc.code})"
    finally:
        await pool.close()


@keys_app.command("list")
def keys_list(
    balances: Annotated[bool, typer.Option(help="Also read each key's balance from the chain's endpoints.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Every sealed key, retired ones too, by record.")] = False,
) -> None:
    """Show the address of every deployer/payer key the configured chains use (creating
    missing keys), so an operator knows what to fund. A pool is made of the chain's first
    non-retired keys (``deployer 0`` is the first of them)."""
    settings = Settings()
    try:
        keystore = _keystore(settings)
        if show_all:
            typer.echo(f"{'record':<32} {'retired':<21} address")
            for info in keystore.infos():
                typer.echo(f"{info.name:<32} {info.retired_at or '-':<21} {info.address or '(secret)'}")
            return
        rows = _addresses(settings, keystore)
    except TokenForgeError as exc:
        raise _fail(exc.message) from None
    _record_best_effort(settings, keystore)
    # plain lines, never cut to the terminal's width: the address is what gets funded
    typer.echo(f"{'chain':<10} {'network':<9} {'key':<12} address" + ("  balance" if balances else ""))
    for chain, role, address in rows:
        line = f"{chain:<10} {settings.chains[chain].network.value:<9} {role:<12} {address}"
        if balances:
            line += "  " + asyncio.run(_balance(settings, chain, address))
        typer.echo(line)


def _read_secret(family: Family) -> bytes:
    """The private key on standard input: EVM hex; Solana a hex seed or keypair, a
    solana-keygen JSON array or a base58 keypair. Returns 32 bytes (key or seed)."""
    from solders.keypair import Keypair

    text = sys.stdin.readline().strip()
    try:
        if family is Family.EVM:
            return bytes.fromhex(text.removeprefix("0x"))
        if text.startswith("["):
            raw = bytes(json.loads(text))
        else:
            try:
                raw = bytes.fromhex(text.removeprefix("0x"))
            except ValueError:
                raw = bytes(Keypair.from_base58_string(text))
        if len(raw) == 64:
            pair = Keypair.from_bytes(raw)
            if Keypair.from_seed(raw[:32]).pubkey() != pair.pubkey():
                raise ValueError("inconsistent keypair")
            return raw[:32]
        return raw
    except (ValueError, TypeError):
        raise _fail("standard input is not a private key in a format this chain takes") from None


_INDEX = Annotated[int, typer.Option(min=0, max=1023, help="Position in the chain's key pool (0 owns the factory).")]
_CHAIN = Annotated[str, typer.Option(help="Chain the key signs on.")]


def _kind(chain: str) -> str:
    from tokenforge.keys.local import EVM_DEPLOYER, SOLANA_PAYER

    if chain not in CHAINS:
        raise _fail(f"{chain!r} is not a chain TokenForge knows")
    return EVM_DEPLOYER if CHAINS[chain].family is Family.EVM else SOLANA_PAYER


@keys_app.command("import")
def keys_import(chain: _CHAIN, index: _INDEX = 0) -> None:
    """Seal an existing private key (read from standard input) as key ``index`` of a chain:
    an EVM deployer key (hex) or a Solana fee payer (hex seed or keypair, solana-keygen
    JSON, base58). Import before first use: a key, once stored, never changes."""
    kind = _kind(chain)
    secret = _read_secret(CHAINS[chain].family)
    settings = Settings()
    keystore = _keystore_or_fail(settings)
    address = _audited(settings, lambda: keystore.import_key(kind, chain, index, secret), lambda: keystore)
    console.print(f"{chain} key {index}: {address}", highlight=False)


@keys_app.command("import-evm", hidden=True)
def keys_import_evm(chain: _CHAIN, index: _INDEX = 0) -> None:
    """Alias of ``keys import`` for EVM chains."""
    if chain not in CHAINS or CHAINS[chain].family is not Family.EVM:
        raise _fail(f"{chain!r} is not an EVM chain")
    keys_import(chain, index)


@keys_app.command("retire")
def keys_retire(
    chain: _CHAIN, index: _INDEX, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False
) -> None:
    """Retire key ``index`` of a chain: it stays sealed (forensics) and never signs again;
    the pool takes the next index (fund it). Restart the workers of the chain. Launches
    still in flight on the retired key fail (``unknown_signer``) after the restart."""
    kind = _kind(chain)
    settings = Settings()
    cs = settings.chains.get(chain)
    factory_key = CHAINS[chain].family is Family.EVM and index == 0 and cs is not None
    if factory_key and cs is not None and (cs.network is Network.EMBEDDED or cs.factory_address is None):
        raise _fail(
            f"key 0 of {chain} is where its factory lives (its nonce-0 address): set the chain's "
            "factory_address to the deployed factory first, then retire key 0"
        )
    if not yes:
        typer.confirm(f"Retire {chain} key {index}? It will never sign again", abort=True)
    keystore = _keystore_or_fail(settings)
    address = _audited(settings, lambda: keystore.retire(kind, chain, index), lambda: keystore)
    console.print(f"retired {chain} key {index}: {address}", highlight=False)
    if cs is not None:
        rows = [r for r in _addresses(settings, keystore) if r[0] == chain]
        _record_best_effort(settings, keystore)
        for _, role, pool_address in rows:
            console.print(f"  {chain} {role}: {pool_address}", highlight=False)
        console.print("restart the processes serving this chain; fund any new key above", highlight=False)


def _keystore_or_fail(settings: Settings):
    try:
        return _keystore(settings)
    except TokenForgeError as exc:
        raise _fail(exc.message) from None


@keys_app.command("rotate-master")
def keys_rotate_master(
    new_keyfile: Annotated[
        pathlib.Path | None,
        typer.Option(help="Put the new local master key in this (new) file; default: replace the keyfile in place."),
    ] = None,
    kms_key_id: Annotated[
        str | None, typer.Option(help="Rotate onto this AWS KMS key instead (id, ARN or alias).")
    ] = None,
) -> None:
    """Re-wrap every sealed key's data key under a new master key. No key changes (same
    addresses); keys.json is replaced in one step. Stop every TokenForge process on this
    data directory first and restart them afterwards."""
    from tokenforge.keys.rotation import Rotation, rotate_to_keyfile, rotate_to_kms

    if new_keyfile is not None and kms_key_id is not None:
        raise _fail("give --new-keyfile or --kms-key-id, not both")
    settings = Settings()
    with Progress(
        TextColumn("re-wrapping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("records", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def act() -> Rotation:
            if kms_key_id is not None:
                return rotate_to_kms(settings, kms_key_id, progress)
            return rotate_to_keyfile(settings, new_keyfile, progress)

        rotation = _audited(settings, act)
    what = f"re-wrapped {rotation.records} records" if rotation.records else "already re-wrapped"
    console.print(f"{what}: master key {rotation.old_kek} -> {rotation.new_kek}", highlight=False)
    if kms_key_id is not None and not rotation.installed:
        console.print(
            f"now set TOKENFORGE_KEY_BACKEND=aws-kms and TOKENFORGE_KMS_KEY_ID={kms_key_id}, restart every "
            "process, then destroy the old master key",
            highlight=False,
        )
    elif rotation.keyfile is not None and not rotation.installed:
        console.print(
            f"the new master key is in {rotation.keyfile}: set TOKENFORGE_KEY_BACKEND=local and "
            f"TOKENFORGE_MASTER_KEYFILE={rotation.keyfile} (unset TOKENFORGE_MASTER_KEY), restart every "
            "process, then destroy the old master key",
            highlight=False,
        )
    else:
        console.print("installed: restart every TokenForge process on this data directory", highlight=False)
