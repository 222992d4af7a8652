"""A year of made-up tickets in the shape of a Jira CSV export (delivery-dashboard's data).

Five teams create stories, bugs, tasks and spikes every working day; each ticket waits, is worked
on and is resolved after a time that grows with its story points, unless the export date comes
first (then it is still open: To Do, In Progress, In Review or Blocked). The columns and the date
format are Jira's own (``Issue key``, ``Custom field (Story Points)``, ``06/Jan/25 9:41 AM``), so
the notebook reads the real thing with the same code.
"""

from __future__ import annotations

import datetime as dt
import math
import random

SEED = 20240303
FIRST_DAY = dt.date(2025, 1, 6)
EXPORTED = dt.datetime(2025, 12, 19, 17, 0)
"""When the export was taken: tickets not resolved by then are open in it."""

COLUMNS = (
    "Issue key",
    "Issue Type",
    "Summary",
    "Status",
    "Custom field (Team)",
    "Created",
    "Resolved",
    "Custom field (Story Points)",
    "Custom field (Epic Link)",
)

# Team -> (Jira project key, tickets created per working day, days a story point takes, epics)
TEAMS: dict[str, tuple[str, float, float, tuple[str, ...]]] = {
    "Payments": ("PAY", 2.2, 1.6, ("Checkout revamp", "Refunds self-service", "PSD2 compliance")),
    "Search": ("SRCH", 1.6, 1.2, ("Typo tolerance", "Ranking v2", "Search analytics")),
    "Mobile": ("MOB", 1.9, 2.0, ("Offline mode", "Push notifications", "App store rating")),
    "Platform": ("PLAT", 1.4, 2.8, ("Kubernetes migration", "Observability", "Cost reduction")),
    "Data": ("DATA", 1.2, 1.8, ("Churn features", "Warehouse clean-up", "Self-service BI")),
}
TYPES = {"Story": 0.55, "Bug": 0.25, "Task": 0.15, "Spike": 0.05}
POINTS = (1, 2, 3, 5, 8, 13)
POINT_WEIGHTS = (3, 5, 6, 4, 2, 1)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

SUBJECTS = (
    "the basket page",
    "card payments",
    "the search results",
    "the login screen",
    "push messages",
    "the nightly export",
    "the order history",
    "the admin console",
    "invoices",
    "the product page",
    "the API gateway",
    "the data warehouse",
)
STORY = ("As a customer I want {s} to be faster", "Show totals on {s}", "Let users filter {s}")
BUG = ("{S} fails on Safari", "Wrong currency on {s}", "Timeout when loading {s}")
TASK = ("Upgrade the libraries behind {s}", "Add monitoring to {s}", "Document {s}")
SPIKE = ("Investigate caching for {s}", "Compare vendors for {s}")
TITLES = {"Story": STORY, "Bug": BUG, "Task": TASK, "Spike": SPIKE}


def jira_time(moment: dt.datetime) -> str:
    """Format a time as Jira's CSV export does: ``06/Jan/25 9:41 AM`` (English month, 12 h)."""
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    day = f"{moment.day:02d}/{MONTHS[moment.month - 1]}/{moment.year % 100:02d}"
    return f"{day} {hour}:{moment.minute:02d} {half}"


def working_time(rng: random.Random, day: dt.date) -> dt.datetime:
    """A time during office hours (8:00 to 18:00) on ``day``."""
    return dt.datetime.combine(day, dt.time(8)) + dt.timedelta(minutes=rng.randrange(600))


def generate_rows(rng: random.Random) -> list[dict[str, object]]:
    """Return every ticket of the export, in creation order within each team."""
    rows: list[dict[str, object]] = []
    for team, (project, per_day, days_per_point, epics) in TEAMS.items():
        # the epics are issues of the export too (type Epic); tickets link to them by key
        epic_keys = {epic: f"{project}-{n + 1}" for n, epic in enumerate(epics)}
        number = len(epics)
        for epic, key in epic_keys.items():
            rows.append(
                {
                    "Issue key": key,
                    "Issue Type": "Epic",
                    "Summary": epic,
                    "Status": "In Progress",
                    "Custom field (Team)": team,
                    "Created": jira_time(working_time(rng, FIRST_DAY)),
                    "Resolved": "",
                    "Custom field (Story Points)": "",
                    "Custom field (Epic Link)": "",
                }
            )
        day = FIRST_DAY
        while day < EXPORTED.date():
            if day.weekday() < 5:
                # Poisson draws from the standard library alone: count exponential gaps
                count, budget = 0, rng.expovariate(1.0)
                while budget < per_day:
                    count += 1
                    budget += rng.expovariate(1.0)
                for _ in range(count):
                    number += 1
                    rows.append(
                        ticket(rng, team, f"{project}-{number}", day, days_per_point, epic_keys)
                    )
            day += dt.timedelta(days=1)
    return rows


def ticket(
    rng: random.Random,
    team: str,
    key: str,
    day: dt.date,
    days_per_point: float,
    epic_keys: dict[str, str],
) -> dict[str, object]:
    """Return one ticket created on ``day``, resolved or still open at the export."""
    kind = rng.choices(list(TYPES), weights=list(TYPES.values()))[0]
    points = rng.choices(POINTS, weights=POINT_WEIGHTS)[0]
    subject = rng.choice(SUBJECTS)
    title = rng.choice(TITLES[kind]).format(s=subject, S=subject[0].upper() + subject[1:])
    created = working_time(rng, day)
    # time in the backlog, then time worked on: log-normal, longer for bigger tickets
    waiting = rng.lognormvariate(math.log(4 if kind != "Bug" else 1.5), 0.9)
    if rng.random() < 0.12:
        waiting += rng.expovariate(1 / 60)  # some tickets sit in the backlog for months
    working = rng.lognormvariate(math.log(days_per_point * points), 0.6)
    if team == "Platform" and day.month >= 9:
        working *= 2.0  # the migration slowed Platform down in the autumn: ageing tickets show it
    started = created + dt.timedelta(days=waiting)
    resolved = started + dt.timedelta(days=working)
    if resolved <= EXPORTED:
        status = "Won't Do" if rng.random() < 0.05 else "Done"
        # resolved during office hours of that day, never before it was created
        resolved = max(working_time(rng, resolved.date()), created + dt.timedelta(minutes=30))
        resolved_text = jira_time(min(resolved, EXPORTED))
    else:
        resolved_text = ""
        if started > EXPORTED:
            status = "To Do"
        else:
            status = rng.choices(("In Progress", "In Review", "Blocked"), weights=(6, 3, 1))[0]
    return {
        "Issue key": key,
        "Issue Type": kind,
        "Summary": title,
        "Status": status,
        "Custom field (Team)": team,
        "Created": jira_time(created),
        "Resolved": resolved_text,
        # Jira leaves story points empty on most bugs
        "Custom field (Story Points)": "" if kind == "Bug" and rng.random() < 0.7 else points,
        "Custom field (Epic Link)": rng.choice(list(epic_keys.values()))
        if rng.random() < 0.8
        else "",
    }
