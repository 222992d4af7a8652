"""A sample of the portal's usage figures, for platform-impact when the portal cannot be reached.

The shape is the portal's own (``GET /services/portal/api/usage`` and ``/api/usage/history``, see
the portal's API): ``{"usage": <totals>, "history": {"days": [{"day", "figures"}]}}``. The numbers
are made up (a platform growing over three months) and the notebook says so when it shows them.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

SEED = 20240404
LAST_DAY = dt.date(2025, 12, 19)
DAYS = 90


def figures(rng: random.Random, n: int) -> dict[str, Any]:
    """The totals on the ``n``-th day of the sample (0 = first): everything grows with ``n``."""
    users = 40 + n
    monthly = min(users, round(18 + 0.45 * n + rng.uniform(-2, 2)))
    weekly = min(monthly, round(monthly * rng.uniform(0.55, 0.7)))
    runs = 30 * n + n * n // 3
    failed = round(runs * 0.06)
    cancelled = round(runs * 0.015)
    apps = 3 + n // 8
    return {
        "users": {
            "total": users,
            "active_monthly": monthly,
            "active_weekly": weekly,
            "new_monthly": min(users, 12 + n // 10),
            "new_weekly": rng.randint(1, 5),
        },
        "servers_started": {"total": 150 + 9 * n, "last_30_days": 200 + 2 * n},
        "jobs": {
            "defined": 8 + n // 3,
            "runs": {
                "succeeded": runs - failed - cancelled,
                "failed": failed,
                "cancelled": cancelled,
            },
        },
        "apps": {
            "published": apps,
            "views": 20 + 7 * n + n * n // 20,
            "unique_viewers": 6 + n // 4,
        },
        "environments": {"datascience": 6 + n // 3 + apps, "python-minimal": 2 + n // 15},
        "median_seconds_to_first_job": round(3 * 86400 - 900 * n + rng.uniform(-3600, 3600), 1),
        "median_seconds_to_first_app": round(9 * 86400 - 2500 * n + rng.uniform(-3600, 3600), 1),
    }


def generate(rng: random.Random) -> dict[str, Any]:
    """Return the whole sample: today's totals and one snapshot a day for ``DAYS`` days."""
    days = []
    for n in range(DAYS):
        day = LAST_DAY - dt.timedelta(days=DAYS - 1 - n)
        days.append({"day": day.isoformat(), "figures": figures(rng, n)})
    usage = {"generated_at": f"{LAST_DAY.isoformat()}T17:00:00Z", "missing": []}
    usage.update(days[-1]["figures"])
    return {"usage": usage, "history": {"days": days}}
