"""tracker's subcommands, registered by the ``sotong`` command line.

Imports are inside the commands: every ``sotong`` call (``sotong run intake`` too) loads
this module to register them, and should not pay for what only one command needs."""

import argparse
import asyncio
from typing import Any


def cmd_rebuild(_: argparse.Namespace) -> int:
    from tracker.rebuild import main as rebuild_main

    print(f"rebuilt {asyncio.run(rebuild_main())} complaint read models from the event store")
    return 0


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``rebuild`` to the ``sotong`` command line."""
    sub.add_parser(
        "rebuild", help="rebuild the tracker's read models from its event store"
    ).set_defaults(func=cmd_rebuild)
