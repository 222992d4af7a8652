"""Run the benchmarks and print a summary table: `make bench` (or `.venv/bin/python bench/run.py`).

Everything the benchmarks need is started here and stopped at the end, also on an error or
Ctrl-C: platforms (`dsml up` on a free port, data in a temporary folder), the peers'
virtualenvs under bench/.venvs/ (installed once), their processes. Progress goes to stderr,
the summary to stdout, and every raw figure to bench/results/<date>-<time>.json.

    .venv/bin/python bench/run.py                 # everything, about 25 minutes
    .venv/bin/python bench/run.py --quick         # fewer iterations, no cron scale test
    .venv/bin/python bench/run.py --only latency  # one benchmark (or a comma-separated list)
    .venv/bin/python bench/run.py --only apps     # apps against plain and preheated Voila
    .venv/bin/python bench/run.py --only load     # 200 users at once on one platform
    .venv/bin/python bench/run.py --report bench/results/<file>.json   # print a saved run again
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import apps
import load
import scheduler
from launch import ROOT, bench_main, progress

CHOICES = {
    "scheduler": set(scheduler.NAMES),
    **{name: {name} for name in scheduler.NAMES},
    **{name: {name} for name in apps.NAMES},
    **{name: {name} for name in load.NAMES},
}
"""What --only accepts: a benchmark's name, or `scheduler` for all of the scheduler's."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description="dsml-platform benchmarks against the peers")
    parser.add_argument(
        "--quick", action="store_true", help="fewer iterations; skip the cron scale test"
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="NAME[,NAME]",
        help=f"run only these: {', '.join(CHOICES)}",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, data dirs)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="JSON",
        help="print the summary of a saved bench/results/*.json again; run nothing",
    )
    args = parser.parse_args(argv)
    if args.only:
        unknown = [n for n in args.only.split(",") if n not in CHOICES]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {list(CHOICES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, print the summary, save the raw figures."""
    args = parse(argv)
    if args.report:
        print_summary(json.loads(args.report.read_text()), args.report)
        return 0
    only: set[str] = set()
    for name in (args.only or "scheduler,apps,load").split(","):
        only |= CHOICES[name]
    opts = scheduler.Options.quick() if args.quick else scheduler.Options()
    skip = {"scale"} if args.quick and not (args.only and "scale" in args.only) else set()

    def measure(work: Path) -> dict[str, Any]:
        results = scheduler.run(opts, only, work, progress, skip=skip)
        if set(apps.NAMES) & only:
            results["selected"].append("apps")
            apps_opts = apps.Options.quick() if args.quick else apps.Options()
            started_apps = time.monotonic()
            try:
                results["apps"] = apps.run(apps_opts, work / "apps", progress)
            except Exception as e:  # noqa: BLE001 - reported like a scheduler benchmark's
                progress(f"apps FAILED: {type(e).__name__}: {e}")
                results["errors"]["apps"] = f"{type(e).__name__}: {e}"
            results["durations_seconds"]["apps"] = round(time.monotonic() - started_apps, 1)
        if set(load.NAMES) & only:
            results["selected"].append("load")
            load_opts = load.Options.quick() if args.quick else load.Options()
            started_load = time.monotonic()
            try:
                results["load"] = load.run(load_opts, work / "load", progress)
            except Exception as e:  # noqa: BLE001 - reported like a scheduler benchmark's
                progress(f"load FAILED: {type(e).__name__}: {e}")
                results["errors"]["load"] = f"{type(e).__name__}: {e}"
            results["durations_seconds"]["load"] = round(time.monotonic() - started_load, 1)
        return results

    return bench_main(
        "", args.keep, measure, lambda results, info, out: print_summary(results, out)
    )


def print_summary(results: dict[str, Any], source: Path) -> None:
    """The summary table on stdout: where and when it was measured, then every benchmark."""
    info = results["machine"]
    print(
        f"# dsml-platform benchmarks, {info['date']}, rev {info['revision']}: {info['cpu']}, "
        f"{info['cores']} cores, {info['memory_gb']} GB, load at start {info['load_1min']}, "
        f"took {info['minutes']} min"
    )
    print()
    for line in scheduler.report(results):
        print(line)
    if results.get("apps"):
        print()
        for line in apps.report(results["apps"]):
            print(line)
    if results.get("load"):
        print()
        for line in load.report(results["load"]):
            print(line)
    shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    print(f"raw figures: {shown}")


if __name__ == "__main__":
    sys.exit(main())
