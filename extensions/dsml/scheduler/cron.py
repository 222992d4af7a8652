"""Cron schedules in an IANA timezone: validation, next tick, and which missed ticks to run.

Times in the database are naive UTC; a schedule is evaluated in its own timezone, so
"0 9 * * *" in Europe/Paris fires at 09:00 Paris time across daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

from dsml.scheduler.exceptions import BadRequest


def check(schedule: str, timezone: str) -> None:
    """Raise BadRequest unless `schedule` is a 5-field cron line and `timezone` an IANA zone."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(
            f"timezone {timezone!r} is not an IANA timezone (e.g. UTC, Europe/Paris)"
        ) from None
    if not isinstance(schedule, str) or len(schedule.split()) != 5:
        raise BadRequest(
            f"schedule {schedule!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week, e.g. '0 6 * * 1-5')"
        )
    try:
        croniter(schedule)
    except (CroniterBadCronError, ValueError, KeyError) as e:
        raise BadRequest(f"schedule {schedule!r} is not a valid cron expression: {e}") from None


def _aware(naive_utc: datetime, tz: ZoneInfo) -> datetime:
    return naive_utc.replace(tzinfo=UTC).astimezone(tz)


def _naive(aware: datetime) -> datetime:
    return aware.astimezone(UTC).replace(tzinfo=None)


def next_tick(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first tick strictly after `after` (naive UTC in, naive UTC out)."""
    tz = ZoneInfo(timezone)
    return _naive(croniter(schedule, _aware(after, tz)).get_next(datetime))


def ticks_between(
    schedule: str, timezone: str, start: datetime, end: datetime, limit: int = 10_000
) -> list[datetime]:
    """Ticks t with start <= t <= end (naive UTC), oldest first, at most `limit` of the newest."""
    tz = ZoneInfo(timezone)
    it = croniter(schedule, _aware(start, tz))
    ticks: list[datetime] = []
    # croniter's get_next is strictly after; step back one second so `start` itself counts
    it.set_current(_aware(start, tz).timestamp() - 1)
    while True:
        t = _naive(it.get_next(datetime))
        if t > end:
            break
        ticks.append(t)
        if len(ticks) > limit:
            ticks.pop(0)
    return ticks


def plan_ticks(
    due: list[datetime], now: datetime, catch_up: str, cap: int, grace_seconds: float
) -> tuple[list[datetime], list[datetime]]:
    """Split due ticks into (run, skip) by the job's catch-up policy.

    A tick within `grace_seconds` of now is on time and always runs; older ones were missed
    (the service was down) and run per policy: none skips them all, latest runs only the newest,
    all runs up to `cap` of the newest.
    """
    on_time = [t for t in due if (now - t).total_seconds() <= grace_seconds]
    missed = [t for t in due if t not in on_time]
    if catch_up == "none" or not missed:
        return on_time, missed
    if catch_up == "latest":
        keep = missed[-1:] if not on_time else []
    else:
        keep = missed[-cap:] if cap > 0 else []
    return sorted(keep + on_time), [t for t in missed if t not in keep]
