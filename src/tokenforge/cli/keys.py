"""``tokenforge keys``: the deployer and payer addresses to fund, and importing existing keys.

Keys stay sealed in the data directory's key store; these commands print addresses and
balances only. ``import-evm`` reads the private key from standard input (never from the
command line, where it would land in shell history and the process list).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from rich.console import Console

from tokenforge.config import Settings
from tokenforge.domain.chains import CHAINS, Family

keys_app = typer.Typer(help="Deployer keys: addresses to fund, balances, import.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _keystore(settings: Settings):
    from tokenforge.keys.local import LocalKeyStore

    return LocalKeyStore(settings.data_dir, master_keyfile=settings.master_keyfile)


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
    from tokenforge.errors import TokenForgeError

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
) -> None:
    """Show the address of every deployer/payer key the configured chains use (creating
    missing keys), so an operator knows what to fund."""
    settings = Settings()
    rows = _addresses(settings, _keystore(settings))
    # plain lines, never cut to the terminal's width: the address is what gets funded
    typer.echo(f"{'chain':<10} {'network':<9} {'key':<12} address" + ("  balance" if balances else ""))
    for chain, role, address in rows:
        line = f"{chain:<10} {settings.chains[chain].network.value:<9} {role:<12} {address}"
        if balances:
            line += "  " + asyncio.run(_balance(settings, chain, address))
        typer.echo(line)


@keys_app.command("import-evm")
def keys_import_evm(
    chain: Annotated[str, typer.Option(help="EVM chain the key deploys on.")],
    index: Annotated[
        int, typer.Option(min=0, max=63, help="Position in the chain's key pool (0 owns the factory).")
    ] = 0,
) -> None:
    """Seal an existing EVM private key (hex, read from standard input) as a deployer key."""
    from tokenforge.errors import TokenForgeError

    if chain not in CHAINS or CHAINS[chain].family is not Family.EVM:
        err.print(f"[red]{chain!r} is not an EVM chain[/red]")
        raise typer.Exit(2)
    text = sys.stdin.readline().strip().removeprefix("0x")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        err.print("[red]standard input is not a hex private key[/red]")
        raise typer.Exit(2) from None
    settings = Settings()
    try:
        address = _keystore(settings).import_evm_deployer_key(chain, index, key)
    except TokenForgeError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(2) from None
    console.print(f"{chain} deployer {index}: {address}")
