"""Put many finished ("skipped") runs into one job, straight into the scheduler's database.

The listing benchmark needs 10,000 runs in one job. Creating them through the API would queue
them, and queued runs execute; so this short script writes them with the service's own
`Store.create_run` (state "skipped", which is final and never dispatched) while the service
runs; SQLite in WAL mode lets it write next to the service. It prints how long that took.

    python bench/seed_runs.py --db-url sqlite:///<data>/scheduler/scheduler.sqlite --job 3 -n 10000
"""

from __future__ import annotations

import argparse
import json
import time

from dsml.scheduler.models import SKIPPED
from dsml.scheduler.store import Store


def seed(db_url: str, job_id: int, count: int) -> float:
    """Create `count` skipped runs of job `job_id`; return the seconds it took."""
    store = Store(db_url)
    try:
        job = store.get_job(job_id)
        started = time.perf_counter()
        for _ in range(count):
            store.create_run(
                job, trigger="manual", parameters={}, state=SKIPPED, message="bench: seeded"
            )
        return time.perf_counter() - started
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, seed, print {"runs": n, "seconds": s} as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True, help="SQLAlchemy URL of the scheduler DB")
    parser.add_argument("--job", type=int, required=True, help="id of the job to fill")
    parser.add_argument("-n", "--count", type=int, default=10_000, help="runs to create")
    args = parser.parse_args(argv)
    seconds = seed(args.db_url, args.job, args.count)
    print(json.dumps({"runs": args.count, "seconds": round(seconds, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
