"""The `afgen` command line (Typer). Defaults come from config.py; these modules only parse,
call the API and print."""

from afgen.cli import extraction, learning, demo, verify  # noqa: F401, I001 - each registers its commands, in --help's order
from afgen.cli.app import app, main

__all__ = ["app", "main"]
