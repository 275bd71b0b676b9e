"""routing's subcommands, registered by the ``sotong`` command line.

Imports are inside the commands: every ``sotong`` call (``sotong run intake`` too) loads
this module to register them, and should not pay for the catalogue, the holiday tables
or the classifier's libraries (seconds) that only one command needs."""

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from services.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from routing.classifier import Classifier

DEFAULT_THRESHOLD = 0.75


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


Classify = Callable[[str], dict[str, object]]


def remote(url: str, client: httpx.Client) -> Classify | None:
    """Routing's own classifier over HTTP, if a routing service answers at ``url``: it is
    fitted and loaded already, so an answer takes milliseconds instead of the seconds a
    fresh process spends importing and loading the tokenizer."""

    def classify(text: str) -> dict[str, object]:
        response = client.post(f"{url}/v1/classify", json={"texts": [text]})
        response.raise_for_status()
        answer: dict[str, object] = response.json()["predictions"][0]
        return answer

    try:
        if client.get(f"{url}/readyz").status_code != 200:
            return None
    except httpx.HTTPError:
        return None
    return classify


def local(threshold: float) -> Classify:
    model = _trained(threshold)

    def classify(text: str) -> dict[str, object]:
        p = model.predict(text)
        return {"department": p.department, "confidence": p.confidence, "auto": p.auto}

    return classify


def cmd_classify(args: argparse.Namespace) -> int:
    with httpx.Client(timeout=10) as client:
        answer = None
        if args.threshold is None:  # routing's own threshold: ask routing if it runs
            answer = remote(args.routing_url, client)
            if answer is not None:
                print(f"(answered by routing at {args.routing_url})", file=sys.stderr)
        if answer is None:
            answer = local(DEFAULT_THRESHOLD if args.threshold is None else args.threshold)
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
            out = answer(text)
            out["confidence"] = round(float(str(out["confidence"])), 4)
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


def cmd_repeat_eval(args: argparse.Namespace) -> int:
    from routing.cases import CasePolicy
    from routing.classifier import MorphemeAnalyzer, load_examples
    from routing.settings import RoutingSettings
    from routing.similarity import (
        DUPLICATE_PAIRS,
        PAIRS,
        Bar,
        Similarity,
        evaluate_repeats,
        load_pairs,
        terms_of,
    )

    settings = RoutingSettings()
    if args.kind == "duplicate":
        default_path, shipped = DUPLICATE_PAIRS, settings.duplicate_threshold
        setting = "duplicate_threshold"
        labels = {"same": "duplicates", "different": "different problems"}
    else:
        default_path, shipped = PAIRS, settings.repeat_threshold
        setting = "repeat_threshold"
        labels = {"same": "repeats", "different": "new complaints"}
    path = Path(args.pairs) if args.pairs else default_path
    try:
        pairs = load_pairs(path)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tokenize = MorphemeAnalyzer()
    similarity = Similarity.fit(terms_of(e.text, tokenize) for e in load_examples())
    threshold = shipped if args.threshold is None else args.threshold
    source = setting if args.threshold is None else "--threshold"
    print(f"{args.kind} pairs from {path}; threshold {threshold:.2f} from {source}")
    evaluation = evaluate_repeats(pairs, similarity, tokenize)
    print(evaluation.report(threshold, **labels))
    if args.kind == "duplicate":
        same = getattr(args, "same_service_threshold", None)
        named = "--same-service-threshold"
        if same is None:
            same, named = settings.duplicate_same_service_threshold, "its setting"
        policy = CasePolicy(
            repeat_threshold=settings.repeat_threshold,
            repeat_window=timedelta(days=settings.repeat_window_days),
            duplicate_threshold=threshold,
            duplicate_window=timedelta(days=settings.duplicate_window_days),
            duplicate_distance_m=settings.duplicate_distance_m,
        )

        def bar_at(t: float) -> Bar:
            return replace(policy, duplicate_same_service_threshold=t).duplicate_bar

        rule = (
            f"the same code {same:.2f} from {named}, two codes never, "
            f"a code missing {threshold:.2f}"
        )
        print(evaluation.service_report(bar_at, same, rule))
    return 0


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``due``, ``classify``, ``classify-eval`` and ``repeat-eval`` to ``sotong``."""
    classify = sub.add_parser("classify", help='route JSON lines {"text": ...} from stdin')
    classify.add_argument(
        "--threshold",
        type=float,
        help="classify here with this threshold (default: ask the running routing service, "
        f"or classify here at {DEFAULT_THRESHOLD})",
    )
    classify.add_argument(
        "--routing-url", default=os.environ.get("SOTONG_ROUTING_URL", "http://127.0.0.1:8002")
    )
    classify.set_defaults(func=cmd_classify)

    ev = sub.add_parser("classify-eval", help="accuracy, precision/recall, confusion")
    ev.add_argument("--test", help="a JSON-lines file {text, department} to test on instead")
    ev.add_argument("--threshold", type=float, default=0.75)
    ev.add_argument("--test-share", type=float, default=0.2)
    ev.add_argument("--seed", type=int, default=7)
    ev.set_defaults(func=cmd_classify_eval)

    rep = sub.add_parser(
        "repeat-eval",
        help="반복민원 or 중복민원: recall and false-positive rate on labelled pairs",
    )
    rep.add_argument(
        "--kind",
        choices=["repeat", "duplicate"],
        default="repeat",
        help="repeat: the same resident again (routing/data/repeats.ko.jsonl, "
        "repeat_threshold); duplicate: another resident at the same place "
        "(routing/data/duplicates.ko.jsonl, duplicate_threshold)",
    )
    rep.add_argument("--pairs", help="a JSON-lines file {earlier, later, repeated} instead")
    rep.add_argument(
        "--threshold",
        type=float,
        help="default: SOTONG_ROUTING_REPEAT_THRESHOLD's or "
        "SOTONG_ROUTING_DUPLICATE_THRESHOLD's value",
    )
    rep.add_argument(
        "--same-service-threshold",
        type=float,
        help="duplicate only: the bar when both were filed with one service code (default: "
        "SOTONG_ROUTING_DUPLICATE_SAME_SERVICE_THRESHOLD's value)",
    )
    rep.set_defaults(func=cmd_repeat_eval)

    due = sub.add_parser("due", help="the legal due time of a complaint")
    due.add_argument(
        "kind", help="other, inquiry, inquiry-law, proposal, grievance, or 3h, 5d, 20d"
    )
    due.add_argument("received_at", help="ISO 8601; without an offset it is Korean time")
    due.add_argument(
        "--holiday", action="append", default=[], help="a temporary holiday (YYYY-MM-DD)"
    )
    due.set_defaults(func=cmd_due)
