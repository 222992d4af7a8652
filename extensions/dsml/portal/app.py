"""The portal service as one traitlets Application: the platform's own pages and APIs.

JupyterHub runs it as a managed service (`python -m dsml.portal`) with its URL, prefix and
token in the environment and the platform's settings as `--PortalApp.trait=value` arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitlets import Float, Unicode, default

from dsml.client import PORTAL
from dsml.datadir import DataDir
from dsml.portal import health
from dsml.portal.apihandlers import environments, pages, requests
from dsml.portal.apihandlers import health as health_handlers
from dsml.portal.store import Store
from dsml.service.app import ServiceApp
from dsml.service.handlers import Route


class PortalApp(ServiceApp):
    """Environments catalog, package requests and platform health, behind hub auth."""

    name = "dsml-portal"
    description = "The dsml-platform portal service: the platform's own pages and APIs."
    service_name = PORTAL

    platform_data_dir = Unicode(
        config=True,
        help="The platform's data dir (built environments live below it), a path "
        "(default: the folder above data_dir).",
    )

    @default("platform_data_dir")
    def _platform_data_dir_default(self) -> str:
        return str(Path(self.data_dir).resolve().parent)

    environments_dir = Unicode(
        "",
        config=True,
        help="Folder of the built environments, a path (empty: <platform_data_dir>/envs).",
    )
    health_timeout_seconds = Float(
        5.0, config=True, help="Seconds each health check waits for an answer."
    )

    aliases = {
        "data-dir": "PortalApp.data_dir",
        "db-url": "PortalApp.db_url",
        "platform-data-dir": "PortalApp.platform_data_dir",
    }

    def initialize(self, argv: list[str] | None = None) -> None:
        """Read config, open (and migrate) the database, connect to the hub API."""
        super().initialize(argv)
        self.store = Store(self.db_url)
        self.store.migrate()
        self.datadir = DataDir(self.platform_data_dir, self.environments_dir or None)
        self.hub = health.ProbeClient(
            self.hub_api_url, self.api_token, timeout=self.health_timeout_seconds
        )

    def handlers(self) -> list[Route]:
        """Pages, environments, package requests, health."""
        return (
            pages.default_handlers
            + environments.default_handlers
            + requests.default_handlers
            + health_handlers.default_handlers
        )

    def template_paths(self) -> list[str]:
        """The portal's page templates."""
        return [str(Path(__file__).parent / "templates")]

    async def health(self) -> dict[str, str]:
        """Every part's check (see dsml.portal.health)."""
        return await health.platform_health(
            self.hub, self.service_name, self.health_timeout_seconds
        )

    async def stopping(self) -> None:
        """Close the hub connection and the database."""
        await self.hub.close()
        self.store.close()

    def environment_names(self) -> list[str]:
        """The curated environments (names), as images/ declares them."""
        from dsml.environments import list_environments

        return [e.name for e in list_environments()]

    def catalog(self) -> list[dict[str, Any]]:
        """Every curated environment with its pins, build state and changes since the last lock."""
        from dsml.environments import list_environments
        from dsml.environments.history import describe

        return [describe(env, self.datadir) for env in list_environments()]
