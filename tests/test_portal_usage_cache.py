"""The portal's usage collector: scrapes and pages reuse a recent collection, the API asks now.

The sources (hub, scheduler, apps) are replaced by subclassing the collector's one call that
asks them (`_collect`), which counts how often it ran; everything around it is the real code.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

from dsml.portal.usage import UsageCollector

from conftest import run_async


class Counting(UsageCollector):
    """A collector whose sources answer at once with the number of the collection."""

    def __init__(self) -> None:
        app = types.SimpleNamespace(
            usage_source_timeout_seconds=5, hub_api_url="http://127.0.0.1:9/hub/api", api_token="x"
        )
        super().__init__(app)
        self.calls = 0

    async def _collect(self, per_user: bool) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(0.05)  # long enough for concurrent callers to queue behind it
        return {"figures": {"n": self.calls}, "users": [1] if per_user else [], "missing": []}


def test_recent_callers_reuse_and_fresh_callers_ask() -> None:
    async def scenario() -> list[Any]:
        c = Counting()
        try:
            first = await c.collect()
            scrape = await c.collect(max_age=30)  # a scrape: the last one is recent enough
            fresh = await c.collect()  # the API: a collection that started after it asked
            table = await c.collect(per_user=True, max_age=30)  # needs the per-user rows
            totals = await c.collect(max_age=30)  # the per-user one has the totals too
            # five callers at once while none is recent: they share what starts after them
            together = await asyncio.gather(*(c.collect() for _ in range(5)))
            return [first, scrape, fresh, table, totals, together, c.calls]
        finally:
            await c.close()

    first, scrape, fresh, table, totals, together, calls = run_async(scenario())
    assert first["figures"]["n"] == 1 and scrape["figures"]["n"] == 1
    assert fresh["figures"]["n"] == 2
    assert table["figures"]["n"] == 3 and table["users"] == [1]
    assert totals["figures"]["n"] == 3
    # the first of the five asks while the four others wait; its collection started before
    # they asked, so one more collection, started after all of them asked, serves all four
    assert sorted(g["figures"]["n"] for g in together) == [4, 5, 5, 5, 5]
    assert calls == 5
