"""(being built) ``tokenforge api-keys``."""

import typer

api_keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
