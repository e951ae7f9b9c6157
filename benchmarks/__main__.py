"""``python -m benchmarks --quick | --medium | --full | --cost``: run, print and save the
results (``--cost``: what plans and metrics cost the fan-out)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from .profiling import summarise
from .report import markdown
from .scenarios import SERVERS, Mode, mode
from .suite import run_mode

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    which = parser.add_mutually_exclusive_group()
    for name in ("quick", "medium", "full", "cost"):
        which.add_argument(f"--{name}", dest="mode", action="store_const", const=name)
    parser.add_argument(
        "--only",
        help="comma-separated servers to run: " + ", ".join(s.key for s in SERVERS),
    )
    parser.add_argument("--budget", type=float, default=1140.0, help="seconds before giving up")
    parser.add_argument("--duration", type=float, help="seconds of publishing per run")
    parser.add_argument("--reps", type=int, help="repetitions (default: the mode's)")
    parser.add_argument(
        "--publishers",
        type=int,
        help="connections the publisher pipelines its events over (default 4)",
    )
    parser.add_argument(
        "--scenario", action="append", help="run only scenarios whose name contains this"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write results")
    parser.add_argument(
        "--profile", type=Path, help="record fastapi-streaming servers with py-spy into this folder"
    )
    args = parser.parse_args(argv)
    chosen = mode(args.mode or "quick")
    if args.reps or args.scenario:
        picked = [
            s
            for s in chosen.scenarios
            if not args.scenario or any(part in s.name for part in args.scenario)
        ]
        chosen = Mode(chosen.name, args.reps or chosen.repetitions, picked, chosen.skipped)
    only = set(args.only.split(",")) if args.only else None
    print(f"Running the {chosen.name} benchmarks ({chosen.repetitions} repetition(s))", flush=True)
    results = run_mode(
        chosen,
        only=only,
        budget=args.budget,
        duration=args.duration,
        publishers=args.publishers,
        profile=args.profile,
    )
    text = markdown(results)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"{chosen.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    (args.results / f"{stem}.md").write_text(text)
    (args.results / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(text)
    print(f"Written to {args.results / stem}.md and .json ({results['elapsed_s']}s)")
    if args.profile is not None:
        for name in sorted(args.profile.glob("*.txt")):
            print(summarise(name))
    failed = [run for run in results["runs"] if "failed" in run]
    return 1 if failed or not results["runs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
