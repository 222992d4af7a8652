"""Submit-to-done latency of a run as its owner's account: a new owner against a warm one.

As root, every run executes as its job owner's system account, and a started kernel cannot
change account. The local executor keeps two kinds of warm workers: per environment, root
workers that imported Papermill and nbconvert and wait (a run of a *new* owner takes one on: it
becomes the owner's account, then starts the kernel), and per owner who ran lately, workers that
run as that owner with their kernel started (a *warm* owner's run pays no start-up).

    .venv/bin/python bench/accounts.py [--runs 5]

It starts a platform (`dsml up --demo`, capacity 1, one warm worker), then for each demo user
who may run jobs: the first run (new owner), a pause for the owner's pool to fill, then `--runs`
runs (warm owner). It prints the medians, and deletes the accounts it made.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from launch import progress, remove_accounts, running_platform
from scheduler import SchedulerApi, run_ours

OWNERS = ["scientist", "analyst", "newcomer", "admin"]
"""Demo users who may run jobs (every lab group)."""


def measure(runs: int) -> dict[str, list[float]]:
    """Latencies (s) of new owners' first runs and warm owners' runs."""
    work = Path(tempfile.mkdtemp(prefix="dsml-bench-accounts-"))
    os.chmod(work, 0o711)
    figures: dict[str, list[float]] = {"new owner": [], "warm owner": []}
    try:
        with running_platform(work / "platform", capacity=1) as platform:
            time.sleep(3)  # the root pool fills after start-up
            for owner in OWNERS:
                api = SchedulerApi(platform, owner)
                job = api.create_job(f"accounts-{owner}")
                first = run_ours(api, job["id"])
                assert first["ok"], first["run"]
                figures["new owner"].append(first["seconds"])
                progress(f"{owner}: new owner {first['seconds']:.2f} s")
                for _ in range(runs):
                    time.sleep(2.5)  # the owner's warm worker starts its kernel meanwhile
                    result = run_ours(api, job["id"])
                    assert result["ok"], result["run"]
                    figures["warm owner"].append(result["seconds"])
                progress(f"{owner}: warm owner {statistics.median(figures['warm owner']):.2f} s")
                api.close()
    finally:
        remove_accounts()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Measure and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="warm runs per owner")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("runs execute as their owners' accounts only as root; run this as root")
        return 2
    figures = measure(args.runs)
    for kind, samples in figures.items():
        print(
            f"{kind:>11}: median {statistics.median(samples):.2f} s, "
            f"min {min(samples):.2f} s, max {max(samples):.2f} s ({len(samples)} runs)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
