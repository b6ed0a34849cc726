"""(being built) ``tokenforge audit``."""

import typer

audit_app = typer.Typer(help="The audit log: verify the chain, export entries.", no_args_is_help=True)
