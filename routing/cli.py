"""routing's subcommands, registered by the ``sotong`` command line.

Imports are inside the commands: every ``sotong`` call (``sotong run intake`` too) loads
this module to register them, and should not pay for the catalogue, the holiday tables
or the classifier's libraries (seconds) that only one command needs."""

import argparse
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from routing.classifier import Classifier


def cmd_due(args: argparse.Namespace) -> int:
    from routing.deadlines import KST, Period, calendar

    try:
        period = Period.parse(args.kind)
        received = datetime.fromisoformat(args.received_at)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if received.tzinfo is None:
        received = received.replace(tzinfo=KST)
    extra = [date.fromisoformat(d) for d in args.holiday]
    print(calendar(extra).due(received, period).isoformat())
    return 0


def _trained(threshold: float) -> "Classifier":
    from routing.catalogue import Catalogue
    from routing.classifier import Classifier, load_examples

    local = Path(os.environ.get("SOTONG_LOCAL_DIR", PROJECT_ROOT / "var"))
    general = Catalogue.load().general_desk
    model = Classifier(threshold=threshold, general_desk=general)
    return model.fit_cached(load_examples(), local / "classifier")


def cmd_classify(args: argparse.Namespace) -> int:
    model = _trained(args.threshold)
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            print(f'line {number}: expected {{"text": "..."}}: {exc}', file=sys.stderr)
            return 2
        p = model.predict(text)
        out = {"department": p.department, "confidence": round(p.confidence, 4), "auto": p.auto}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0


def cmd_classify_eval(args: argparse.Namespace) -> int:
    from routing.catalogue import Catalogue
    from routing.classifier import Classifier, evaluate, load_examples, split

    general = Catalogue.load().general_desk
    examples = load_examples()
    if args.test:
        train, test = examples, load_examples(Path(args.test))
        print(
            f"trained on all {len(train)} shipped examples; testing on {len(test)} from {args.test}"
        )
    else:
        train, test = split(examples, test_share=args.test_share, seed=args.seed)
        print(f"held-out split: {len(train)} to train, {len(test)} to test (seed {args.seed})")
    model = Classifier(threshold=args.threshold, general_desk=general).fit(train)
    print(f"confidence threshold {args.threshold}")
    print(evaluate(model, test).report())
    return 0


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``due``, ``classify`` and ``classify-eval`` to the ``sotong`` command line."""
    classify = sub.add_parser("classify", help='route JSON lines {"text": ...} from stdin')
    classify.add_argument("--threshold", type=float, default=0.75)
    classify.set_defaults(func=cmd_classify)

    ev = sub.add_parser("classify-eval", help="accuracy, precision/recall, confusion")
    ev.add_argument("--test", help="a JSON-lines file {text, department} to test on instead")
    ev.add_argument("--threshold", type=float, default=0.75)
    ev.add_argument("--test-share", type=float, default=0.2)
    ev.add_argument("--seed", type=int, default=7)
    ev.set_defaults(func=cmd_classify_eval)

    due = sub.add_parser("due", help="the legal due time of a complaint")
    due.add_argument(
        "kind", help="other, inquiry, inquiry-law, proposal, grievance, or 3h, 5d, 20d"
    )
    due.add_argument("received_at", help="ISO 8601; without an offset it is Korean time")
    due.add_argument(
        "--holiday", action="append", default=[], help="a temporary holiday (YYYY-MM-DD)"
    )
    due.set_defaults(func=cmd_due)
