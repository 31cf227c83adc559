"""The ``superposim`` command: ``main`` parses, the subcommands that need more live beside it."""

from scenarios.cli.main import main

__all__ = ["main"]
