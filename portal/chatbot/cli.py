"""The chatbot's subcommand for the ``sotong`` command line: ``sotong chatbot-eval``.

The bot asks routing for departments over HTTP. Without a running routing service the
command line passes a local classifier factory (``sotong`` may import routing; the portal
never does)."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

LocalClassifier = Callable[[float], Callable[[str], dict[str, object]]]
"""routing's ``cli.local``: a fitted classifier at a threshold, as a plain function."""


async def _run(args: argparse.Namespace, local: LocalClassifier | None) -> int:
    from portal.chatbot.bot import Chatbot, Classification, Classify, Thresholds
    from portal.chatbot.evaluation import EVAL, TUNING, CaseSet, evaluate, observe, tune
    from portal.chatbot.handoff import RoutingClassifier

    async with httpx.AsyncClient(timeout=10) as client:
        classify: Classify
        try:
            ready = (await client.get(f"{args.routing_url}/readyz")).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready:
            classify = RoutingClassifier(client, args.routing_url)
            print(f"(departments from routing at {args.routing_url})", file=sys.stderr)
        elif local is not None:
            model = local(args.classifier_threshold)

            async def classify_here(text: str) -> Classification:
                p = model(text)
                return Classification(
                    str(p["department"]), float(str(p["confidence"])), bool(p["auto"])
                )

            classify = classify_here
            print("(departments from a local classifier: routing is not running)", file=sys.stderr)
        else:
            print(f"error: routing does not answer at {args.routing_url}", file=sys.stderr)
            return 2
        thresholds = Thresholds()
        if args.answer_threshold is not None:
            thresholds = replace(thresholds, answer=args.answer_threshold)
        bot = Chatbot.load(classify=classify, thresholds=thresholds)
        if args.tune:
            tuning = CaseSet.load(TUNING).check(bot)
            report = await tune(await observe(bot, tuning.cases), thresholds)
            print(f"tuned on {len(tuning.cases)} cases of {TUNING.name} (never the held-out set)")
            print("\n".join(report.lines(details=args.details)))
            return 0
        path = args.set or EVAL
        cases = CaseSet.load(path).check(bot)
        report = await evaluate(await observe(bot, cases.cases), thresholds)
        print(f"held-out set: {path}")
        print("\n".join(report.lines(details=args.details)))
    return 0


def register(sub: "argparse._SubParsersAction[Any]", *, local: LocalClassifier | None) -> None:
    """Add ``chatbot-eval`` to the ``sotong`` command line."""
    ev = sub.add_parser(
        "chatbot-eval", help="the chatbot's top-1 accuracy, \"don't know\" and false answers"
    )
    ev.add_argument("--set", help="a case file to evaluate instead of the held-out set")
    ev.add_argument("--tune", action="store_true", help="choose thresholds on the tuning set")
    ev.add_argument("--answer-threshold", type=float, help="override the answer threshold")
    ev.add_argument("--details", action="store_true", help="list every miss")
    ev.add_argument(
        "--routing-url", default=os.environ.get("SOTONG_ROUTING_URL", "http://127.0.0.1:8002")
    )
    ev.add_argument("--classifier-threshold", type=float, default=0.75)
    ev.set_defaults(func=lambda args: asyncio.run(_run(args, local)))
