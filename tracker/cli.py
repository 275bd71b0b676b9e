"""tracker's subcommands, registered by the ``sotong`` command line."""

import argparse
import asyncio
from typing import Any

from tracker.rebuild import main as rebuild_main


def cmd_rebuild(_: argparse.Namespace) -> int:
    print(f"rebuilt {asyncio.run(rebuild_main())} complaint read models from the event store")
    return 0


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``rebuild`` to the ``sotong`` command line."""
    sub.add_parser(
        "rebuild", help="rebuild the tracker's read models from its event store"
    ).set_defaults(func=cmd_rebuild)
