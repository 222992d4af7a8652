"""The curated environments: every one with its pins, versions and what changed."""

from __future__ import annotations

from dsml.service.handlers import APIHandler


class EnvironmentsHandler(APIHandler):
    """GET: the catalog the environments page shows, as JSON."""

    async def get(self) -> None:
        """{"environments": [...]}: name, versions, lock hash, packages, changes."""
        self.user()
        catalog = await self.service_app.run_blocking(self.service_app.catalog)
        self.write_json({"environments": catalog})


default_handlers = [(r"/api/environments", EnvironmentsHandler)]
