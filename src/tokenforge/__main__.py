"""``python -m tokenforge``: the ``tokenforge`` command."""

from tokenforge.cli.main import app

app(prog_name="tokenforge")
