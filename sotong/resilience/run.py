"""``sotong resilience``: start the platform, run the scenarios in turn, write the report.

The full run's parameters are the issue's (5,000 complaints, at least 20 kills every 10 s,
the database stopped 30, 90 and 180 s and the broker 30 s, 1,000 fuzzed requests); the
short run (``--short``, what CI runs) is the same suite, smaller. Everything is bounded:
each scenario has a count and a time limit, and the run stops by itself. Traffic goes to
127.0.0.1 only: the stack's own ports.
"""

import argparse
import asyncio
import shutil
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from services.settings import PROJECT_ROOT
from sotong.resilience.report import Report, Scenario

if TYPE_CHECKING:  # the stack's imports stay out of every ``sotong run``
    from sotong.resilience.stack import Stack

ORDER = ("poison", "isolation", "pii", "fuzz", "kills", "outages")


@dataclass(frozen=True)
class Parameters:
    complaints: int = 5000
    kills: int = 20
    kill_every_s: float = 10.0
    kill_targets: tuple[str, ...] = (
        "intake",
        "routing",
        "tracker",
        "notifier",
        "portal",
        "mongodb",
    )
    """Not the broker: the embedded one keeps records in memory only, so its kill -9 loses
    what it had acknowledged, by construction (a replicated Kafka does not); the
    broker's loss and the services' replay are tested in tests/e2e/test_crash_survival."""
    db_pauses_s: tuple[float, ...] = (30.0, 90.0, 180.0)
    broker_pause_s: float = 30.0
    complaints_per_pause: int = 300
    fuzz_requests: int = 1000
    poison_batch: int = 100
    canary_wait_s: float = 120.0
    settle_s: float = 600.0
    scenarios: tuple[str, ...] = ORDER
    seed: int = 11


SHORT = Parameters(
    complaints=200,
    kills=4,
    kill_every_s=4.0,
    kill_targets=("intake", "routing", "tracker", "notifier", "mongodb"),
    db_pauses_s=(8.0,),
    broker_pause_s=5.0,
    complaints_per_pause=60,
    fuzz_requests=100,
    poison_batch=20,
    canary_wait_s=30.0,
    settle_s=90.0,
)


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Runner:
    root: Path
    models: Path
    parameters: Parameters
    report: Report
    log: Callable[[str], None] = say
    stacks: list["Stack"] = field(default_factory=list)

    @property
    def stack(self) -> "Stack":
        return self.stacks[-1]

    async def fresh_stack(self) -> "Stack":
        """A new stack in a new directory (the first, or one after a poison left a
        service hung: the scenarios after it measure their own things)."""
        from sotong.resilience.stack import start

        if self.stacks:
            await asyncio.to_thread(self.stack.stop)
        where = self.root / f"run-{len(self.stacks) + 1}"
        if where.exists():
            shutil.rmtree(where)  # an earlier run's database would be audited too
        self.log(f"[{datetime.now(UTC):%H:%M:%S}] starting the platform in {where}…")
        self.stacks.append(await asyncio.to_thread(start, where, model_dir=self.models))
        return self.stack

    async def scenario(
        self, name: str, title: str, body: Callable[[Scenario], Awaitable[object]]
    ) -> object:
        if name not in self.parameters.scenarios:
            return None
        scenario = Scenario(title)
        self.report.scenarios.append(scenario)
        self.log(f"[{datetime.now(UTC):%H:%M:%S}] {title}…")
        t0 = time.monotonic()
        result: object = None
        try:
            result = await body(scenario)
        except Exception as exc:
            scenario.error = f"{type(exc).__name__}: {exc}"
            scenario.figures["traceback"] = traceback.format_exc(limit=6)
        scenario.figures["seconds"] = round(time.monotonic() - t0, 1)
        for check in scenario.checks:
            self.log(f"    {check.status.value:9} {check.name}: {check.value:g}")
        if scenario.error:
            self.log(f"    could not finish: {scenario.error}")
        return result


async def run_all(
    root: Path,
    models: Path,
    parameters: Parameters,
    report: Report,
    log: Callable[[str], None] = say,
) -> Report:
    """Every chosen scenario in turn on the platform started in ``root``; stopped after."""
    # imported here: ``sotong run`` starts every service through this CLI, and
    # schemathesis and hypothesis would add a second to each start
    from sotong.resilience import crashes, fuzz, isolation, pii, poison

    p = parameters
    runner = Runner(root, models, p, report, log)
    try:
        await runner.fresh_stack()
        usable = await runner.scenario(
            "poison",
            "poison messages",
            lambda s: poison.run(runner.stack, s, batch_size=p.poison_batch, wait=p.canary_wait_s),
        )
        if usable is False:
            report.scenarios[-1].figures["platform_restarted_after"] = True
            await runner.fresh_stack()
        await runner.scenario(
            "isolation", "isolation matrix", lambda s: isolation.run(runner.stack, s)
        )
        await runner.scenario(
            "pii", "personal-data scan", lambda s: pii.run(runner.stack, s, settle=8.0)
        )
        await runner.scenario(
            "fuzz", "fuzzing", lambda s: fuzz.run(runner.stack, s, requests=p.fuzz_requests)
        )
        await runner.scenario(
            "kills",
            "kill -9 under load",
            lambda s: crashes.kills(
                runner.stack,
                s,
                complaints=p.complaints,
                kills=p.kills,
                every=p.kill_every_s,
                targets=p.kill_targets,
                settle=p.settle_s,
                seed=p.seed,
            ),
        )
        pauses = [("mongodb", s) for s in p.db_pauses_s] + [("kafka", p.broker_pause_s)]
        await runner.scenario(
            "outages",
            "outages under load",
            lambda s: crashes.outage(
                runner.stack,
                s,
                pauses=pauses,
                complaints_per_pause=p.complaints_per_pause,
                settle=p.settle_s,
            ),
        )
    finally:
        if runner.stacks:
            await asyncio.to_thread(runner.stack.stop)
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    return report


def model_dir() -> Path:
    """The classifier ``sotong up`` fits and keeps (routing fits it on first start)."""
    return PROJECT_ROOT / "var" / "classifier"


async def main_async(parameters: Parameters, out: Path, mode: str, models: Path) -> Report:
    report = Report(mode=mode, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    return await run_all(out, models, parameters, report)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    cmd = sub.add_parser(
        "resilience",
        help="the resilience suite: poison, isolation, personal data, fuzzing, kill -9, outages",
    )
    cmd.add_argument("--short", action="store_true", help="the CI-sized run (a few minutes)")
    cmd.add_argument("--only", help=f"comma-separated scenarios of {', '.join(ORDER)}")
    cmd.add_argument("--complaints", type=int, help="complaints filed under kill -9")
    cmd.add_argument("--kills", type=int)
    cmd.add_argument("--fuzz-requests", type=int)
    cmd.add_argument("--out", help="directory of report.json and summary.txt (var/resilience)")
    cmd.set_defaults(func=cmd_resilience)


def parameters_from(args: argparse.Namespace) -> Parameters:
    base = SHORT if args.short else Parameters()
    changes = asdict(base)
    if args.only:
        wanted = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = set(wanted) - set(ORDER)
        if unknown:
            raise SystemExit(
                f"--only: unknown scenarios {', '.join(sorted(unknown))}; known: {', '.join(ORDER)}"
            )
        changes["scenarios"] = wanted
    for name in ("complaints", "kills", "fuzz_requests"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return Parameters(**changes)


def cmd_resilience(args: argparse.Namespace) -> int:
    parameters = parameters_from(args)
    out = Path(args.out) if args.out else PROJECT_ROOT / "var" / "resilience"
    mode = "short" if args.short else "full"
    report = asyncio.run(main_async(parameters, out, mode, model_dir()))
    as_json, as_text = report.write(out)
    print()
    print(report.summary())
    print(f"\nreport: {as_json}\nsummary: {as_text}")
    return 0 if report.ok else 1
