"""The apps service as one traitlets Application: publish, version, share, serve, count use.

JupyterHub runs it as a managed service (`python -m dsml.apps --config-file=...`). An app is a
published notebook version served by its owner's named server `app-<slug>`, which runs only
Voila (`dsml.apps.server`) behind hub OAuth. The service owns the versions (immutable
bundles by hash), the stable link `/services/apps/a/<slug>` that wakes a stopped app, the
shares (JupyterHub's own sharing, mirrored here for the gallery), and the usage figures the
app servers report.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import Dict, Float, Integer, List, Unicode, default

from dsml import kernels, scopes
from dsml.apps import bundles
from dsml.apps.apihandlers import apps as apps_handlers
from dsml.apps.apihandlers import pages, servers, shares
from dsml.apps.exceptions import BadRequest
from dsml.apps.hub import RUNNING, STARTING, STOPPED, HubApps
from dsml.apps.models import EVERYONE, VIEWER, server_name
from dsml.apps.store import Store
from dsml.client import APPS, ApiError
from dsml.service.app import ServiceApp
from dsml.service.handlers import Route


@dataclass
class ServingTurns:
    """The (re)starts of one app's server: one at a time, and one serves every earlier ask.

    Concurrent publishes of one app each restart its server, and the hub refuses a stop or
    start while another is pending. Asks are numbered; a restart that began after an ask was
    made serves it too, so the waiting asks return its state instead of restarting again.
    """

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    asked: int = 0
    done: int = 0
    state: str = ""


class AppsApp(ServiceApp):
    """Published notebooks as Voila apps, behind hub auth."""

    name = "dsml-apps"
    description = "The dsml-platform apps service: notebooks published as Voila apps."
    service_name = APPS

    environments = List(
        Unicode(), config=True, help="Curated environments apps may run in (names)."
    )
    max_files = Integer(20, config=True, help="Most files an app version may carry.")
    max_bundle_bytes = Integer(
        20 * 1024 * 1024,
        config=True,
        help="Largest notebook plus files of one version, in bytes.",
    )
    declared_apps = List(
        Dict(),
        config=True,
        help="Apps as code (the settings' apps.declared): published at start, kept in step.",
    )
    root_dir = Unicode(
        config=True,
        help="Folder relative notebook paths of declared apps start from, a path.",
    )

    @default("root_dir")
    def _root_dir_default(self) -> str:
        from dsml.settings import platform_root

        return str(platform_root())

    maintain_seconds = Float(
        10.0,
        config=True,
        help="Seconds between checks that always-on apps run and viewer grants still hold.",
    )

    @default("max_request_bytes")
    def _max_request_default(self) -> int:
        # a bundle travels base64-encoded inside the JSON body: 4/3 of its size, plus slack
        return self.max_bundle_bytes * 4 // 3 + 1024 * 1024

    aliases = {
        "config-file": "AppsApp.config_file",
        "data-dir": "AppsApp.data_dir",
        "db-url": "AppsApp.db_url",
    }

    def initialize(self, argv: list[str] | None = None) -> None:
        """Read config, open (and migrate) the database and the bundle folder."""
        super().initialize(argv)
        self.store = Store(self.db_url)
        self.store.migrate()
        self.bundles = bundles.BundleStore(Path(self.data_dir) / "bundles")
        base = self.service_prefix.rsplit("services/", 1)[0] or "/"
        self.hub = HubApps(self.hub_api_url, self.api_token, base)
        self.public_prefix = (self.public_url or "").rstrip("/") + self.service_prefix
        self.start_attempts: dict[str, float] = {}
        self.serving: dict[str, ServingTurns] = {}
        self._tasks: list[asyncio.Task] = []
        self._starting: set[asyncio.Future] = set()

    def handlers(self) -> list[Route]:
        """Pages, apps and versions, shares, servers and usage."""
        return (
            pages.default_handlers
            + apps_handlers.default_handlers
            + shares.default_handlers
            + servers.default_handlers
        )

    def template_paths(self) -> list[str]:
        """The apps service's page templates."""
        return [str(Path(__file__).parent / "templates")]

    # --- rules shared by the API, the pages and apps as code -------------------------------

    def environment_names(self) -> list[str]:
        """Environments apps may run in."""
        if self.environments:
            return list(self.environments)
        from dsml.environments import list_environments

        return [e.name for e in list_environments()]

    def current_versions(self) -> dict[str, str | None]:
        """The version each environment's kernel runs now (None when not built here)."""
        out = {}
        for name in self.environment_names():
            meta = kernels.kernel_metadata(kernels.kernel_name(name))
            out[name] = meta.get("version") if meta else None
        return out

    def may_see(self, user: dict[str, Any], app: dict[str, Any]) -> bool:
        """Owner, apps admin, or someone the app is shared with (by name, group, everyone)."""
        if user.get("name") == app["owner"] or scopes.has_scope(user, scopes.APPS_ADMIN):
            return True
        shared = app["shared"]
        groups = set(user.get("groups") or [])
        return (
            shared["everyone"]
            or user.get("name") in shared["users"]
            or bool(groups & set(shared["groups"]))
        )

    def may_change(self, user: dict[str, Any], app: dict[str, Any]) -> bool:
        """Only the owner or an apps admin edits, shares, publishes, stops or deletes."""
        return user.get("name") == app["owner"] or scopes.has_scope(user, scopes.APPS_ADMIN)

    async def make_bundle(self, body: dict[str, Any]) -> bundles.Bundle:
        """Check a publish request's notebook and files and build its bundle (off the loop)."""
        return await self.run_blocking(
            lambda: bundles.make_bundle(
                body,
                self.environment_names(),
                self.current_versions(),
                max_files=self.max_files,
                max_bytes=self.max_bundle_bytes,
            )
        )

    async def check_share_targets(self, users: list[str], groups: list[str]) -> None:
        """Every named user and group exists in the hub (BadRequest naming the first missing)."""
        for name in users:
            await self.hub.check_user(name)
        for name in groups:
            await self.hub.check_group(name)

    async def publish(
        self,
        owner: str,
        author: str,
        body: dict[str, Any],
        managed: bool = False,
        start: bool = True,
    ) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """Check, store and serve a new version (a new app for a new slug); share it.

        Nothing is stored when anything is wrong: the share targets and the bundle are
        checked before the first write.
        """
        share = parse_share(body.get("share"))
        await self.check_share_targets(share["users"], share["groups"])
        fields = parse_app_fields(body, partial=False)
        slug = body.get("slug") or ""
        if slug and not isinstance(slug, str):
            raise BadRequest("slug must be a string")
        if not slug:
            slug = await self.run_blocking(self._slug_for, owner, fields["title"])
        from dsml.apps.models import SLUG_HELP, SLUG_RULE

        if not SLUG_RULE.fullmatch(slug):
            raise BadRequest(f"slug {slug[:80]!r} is not allowed: use {SLUG_HELP}")
        # every field is checked before the bundle is written: a refusal stores nothing
        notebook_path = body.get("notebook_path") or ""
        if (
            not isinstance(notebook_path, str)
            or len(notebook_path) > 1024
            or "\x00" in notebook_path
        ):
            raise BadRequest("notebook_path must be a path of at most 1024 characters without NUL")
        bundle = await self.make_bundle(body)
        await self.run_blocking(self.bundles.save, bundle)
        app, version, created = await self.store.run(
            self.store.publish,
            slug,
            owner,
            author,
            fields,
            {
                "sha256": bundle.sha256,
                "environment": bundle.environment,
                "environment_version": bundle.environment_version,
                "notebook_path": notebook_path,
                "files": bundle.files,
                "size_bytes": bundle.size_bytes,
                "has_thumbnail": bundle.thumbnail is not None,
            },
            managed,
        )
        self.log.info(
            "%s published %s version %s (%s, %d bytes)",
            author,
            slug,
            version["version"],
            bundle.sha256[:12],
            bundle.size_bytes,
        )
        # serve the new version: a running server restarts with it, a new app starts (apps
        # as code start on their first visit unless always on: a restart wakes none of them)
        if start or app["always_on"] or not created:
            await self.serve_current(app, restart=not created)
        app = await self.add_shares(app, share)
        return app, version, created

    def _slug_for(self, owner: str, title: str) -> str:
        """A free slug made from the title (a number appended when taken)."""
        from dsml.apps.models import MAX_SLUG, slugify

        base = slugify(title) or "app"
        candidate = base
        n = 2
        while self.store.find_app(candidate) is not None:
            suffix = f"-{n}"
            candidate = base[: MAX_SLUG - len(suffix)].rstrip("-") + suffix
            n += 1
        return candidate

    async def add_shares(self, app: dict[str, Any], share: dict[str, Any]) -> dict[str, Any]:
        """Grant the hub shares and record them (the server must exist in the hub first).

        Users get a hub share each. Groups get a hub group share too, but JupyterHub 5.5
        leaves group shares out of a viewer's OAuth token, so members get in through a user
        share made when they open the stable link (`grant_viewer`). 'Everyone' is recorded
        here only: the hub has no such share.
        """
        targets = [("user", u) for u in share["users"]] + [("group", g) for g in share["groups"]]
        if targets:
            server = server_name(app["slug"])
            await self.hub.ensure_server(app["owner"], server)
            for kind, name in targets:
                await self.hub.share(app["owner"], server, kind, name)
                await self.store.run(self.store.add_share, app["slug"], kind, name)
        if share.get("everyone"):
            await self.store.run(self.store.add_share, app["slug"], EVERYONE, "*")
        return await self.store.run(self.store.get_app, app["slug"])

    async def remove_share(self, app: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
        """Revoke in the hub first (so access ends now), then forget it here.

        Viewer grants that the removed share justified are revoked with it.
        """
        server = server_name(app["slug"])
        if kind in ("user", "group"):
            await self.hub.unshare(app["owner"], server, kind, name)
        shared = await self.store.run(self.store.remove_share, app["slug"], kind, name)
        if kind == "user":
            await self.store.run(self.store.remove_share, app["slug"], VIEWER, name)
        await self.reconcile_viewers(app["slug"])
        return shared

    def entitled(self, app: dict[str, Any], name: str, groups: list[str]) -> bool:
        """Whether a group or 'everyone' lets this user open the app."""
        shared = app["shared"]
        return shared["everyone"] or bool(set(groups) & set(shared["groups"]))

    async def grant_viewer(self, app: dict[str, Any], user: dict[str, Any]) -> None:
        """Give a viewer entitled by a group or 'everyone' a hub share of their own.

        Called when they open the stable link; the grant is recorded (kind VIEWER) so that
        revoking the group or 'everyone', or the viewer leaving the group, revokes it.
        """
        name = user.get("name") or ""
        slug = app["slug"]
        if name == app["owner"] or name in app["shared"]["users"]:
            return
        if not self.entitled(app, name, list(user.get("groups") or [])):
            return
        if await self.store.run(self.store.has_share, slug, VIEWER, name):
            return
        server = server_name(slug)
        await self.hub.ensure_server(app["owner"], server)
        await self.hub.share(app["owner"], server, "user", name)
        await self.store.run(self.store.add_share, slug, VIEWER, name)

    async def reconcile_viewers(self, slug: str | None = None) -> None:
        """Revoke viewer grants no group or 'everyone' justifies any more."""
        grants = await self.store.run(self.store.viewers, slug)
        groups: dict[str, list[str] | None] = {}
        apps: dict[str, dict[str, Any]] = {}
        for grant in grants:
            name = grant["name"]
            if name not in groups:
                groups[name] = await self.hub.groups_of(name)
            if grant["slug"] not in apps:
                apps[grant["slug"]] = await self.store.run(self.store.get_app, grant["slug"])
            app = apps[grant["slug"]]
            user_groups = groups[name]
            if user_groups is not None and (
                name in app["shared"]["users"] or self.entitled(app, name, user_groups)
            ):
                continue
            if name not in app["shared"]["users"]:
                await self.hub.unshare(app["owner"], server_name(app["slug"]), "user", name)
            await self.store.run(self.store.remove_share, app["slug"], VIEWER, name)

    async def serve_current(self, app: dict[str, Any], restart: bool) -> str:
        """Start the app's server, or restart it so it serves the current version."""
        turns = self.serving.setdefault(app["slug"], ServingTurns())
        turns.asked += 1
        mine = turns.asked
        async with turns.lock:
            if turns.done >= mine:
                return turns.state
            began = turns.asked
            turns.state = await self._serve_current(app, restart)
            turns.done = began
            return turns.state

    async def _serve_current(self, app: dict[str, Any], restart: bool) -> str:
        server = server_name(app["slug"])
        if restart:
            self.start_attempts.pop(app["slug"], None)
            state = (await self.hub.server(app["owner"], server))["state"]
            if state == STOPPED:
                return STOPPED
            await self.hub.stop(app["owner"], server)
            await self.wait_state(app["owner"], server, {STOPPED}, 30)
        return await self.start_server(app)

    async def start_server(self, app: dict[str, Any]) -> str:
        """Start the app's server (running or starting already is fine)."""
        self.start_attempts.setdefault(app["slug"], time.time())
        try:
            current = await self.store.run(self.store.version, app["slug"])
            options = {
                "environment": current["environment"],
                "environment_version": current.get("environment_version") or "",
            }
            return await self.hub.start(app["owner"], server_name(app["slug"]), options)
        except ApiError as e:
            self.log.warning("starting app %s failed: %s", app["slug"], e.message)
            await self.store.run(
                self.store.set_log, app["slug"], None, f"could not start: {e.message}"
            )
            return STOPPED

    def start_in_background(self, app: dict[str, Any]) -> None:
        """Start the app's server without waiting for the hub's answer."""
        task = asyncio.ensure_future(self.start_server(app))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def wait_state(self, owner: str, server: str, states: set[str], seconds: float) -> str:
        """Poll the hub until the server is in one of `states` (or the time is up)."""
        deadline = time.monotonic() + seconds
        while True:
            state = (await self.hub.server(owner, server))["state"]
            if state in states or time.monotonic() > deadline:
                return state
            await asyncio.sleep(0.2)

    async def status(self, app: dict[str, Any]) -> dict[str, Any]:
        """The app server's state as a viewer's waiting page shows it."""
        server = server_name(app["slug"])
        found = await self.hub.server(app["owner"], server)
        state = found["state"]
        log = await self.store.run(self.store.log, app["slug"])
        message = {
            RUNNING: "The app is ready.",
            STARTING: "Starting the app…",
            "stopping": "The app is stopping…",
            STOPPED: "The app is not running.",
        }.get(state, state)
        if state == RUNNING:
            # it came up: a later stop is not a failed start
            self.start_attempts.pop(app["slug"], None)
        attempted = self.start_attempts.get(app["slug"])
        failed = bool(
            state == STOPPED
            and attempted
            and log.get("error")
            and log.get("updated")
            and _epoch(log["updated"]) >= attempted - 1
        )
        if failed:
            state, message = "failed", "The app could not start; its owner has been told."
        return {
            "state": state,
            "ready": found["ready"],
            "message": message,
            "url": self.hub.server_url(app["owner"], server),
        }

    async def stop_server(self, app: dict[str, Any]) -> None:
        """Stop the app's server (an owner's stop is not a failed start)."""
        self.start_attempts.pop(app["slug"], None)
        await self.hub.stop(app["owner"], server_name(app["slug"]))

    async def delete(self, app: dict[str, Any]) -> None:
        """Stop and forget the server (its shares go with it), then the app and its bundles."""
        await self.hub.stop(app["owner"], server_name(app["slug"]), remove=True)
        hashes = await self.store.run(self.store.delete, app["slug"])
        for sha in set(hashes):
            if not await self.store.run(self.store.hash_in_use, sha):
                await self.run_blocking(self.bundles.remove, sha)

    # --- background work ------------------------------------------------------------------

    async def started(self) -> None:
        """Publish the declared apps, then keep always-on apps up and viewer grants right."""
        self._tasks.append(asyncio.create_task(self._declare_then_maintain()))

    async def _declare_then_maintain(self) -> None:
        pending = list(self.declared_apps)
        while True:
            if pending:
                # an owner made after the service started (dsml up --demo) is there next round
                pending = await self.publish_declared(pending)
            try:
                await self.maintain()
            except Exception as e:  # keep maintaining: the hub may be restarting
                self.log.warning("apps maintenance: %s", e)
            await asyncio.sleep(self.maintain_seconds)

    async def maintain(self) -> None:
        """Start always-on apps that are stopped and keep them active; check viewer grants."""
        await self.reconcile_viewers()
        apps = await self.store.run(self.store.list_apps)
        for app in apps:
            if app["always_on"]:
                server = server_name(app["slug"])
                state = (await self.hub.server(app["owner"], server))["state"]
                if state == STOPPED:
                    self.log.info("always-on app %s is stopped: starting it", app["slug"])
                    await self.start_server(app)
                elif state == RUNNING:
                    # in use or not, the idle culler must leave it running
                    await self.hub.touch(app["owner"], server)

    async def publish_declared(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apps as code: publish each declared app whose notebook or files changed.

        Returns the ones that could not be published yet (e.g. their owner does not exist).
        """
        failed = []
        for spec in specs:
            try:
                await self._publish_declared(spec)
            except Exception as e:
                self.log.error("declared app %s not published yet: %s", spec.get("slug"), e)
                failed.append(spec)
        return failed

    async def _publish_declared(self, spec: dict[str, Any]) -> None:
        if not await self.hub.user_exists(spec["owner"]):
            raise BadRequest(f"its owner {spec['owner']!r} is not a user (yet)")
        body = await self.run_blocking(declared_body, spec, Path(self.root_dir))
        slug = spec["slug"]
        app = await self.store.run(self.store.find_app, slug)
        if app is not None:
            current = await self.store.run(self.store.version, slug, None)
            bundle = await self.make_bundle(body)
            if bundle.sha256 == current["sha256"] and app["owner"] == spec["owner"]:
                fields = parse_app_fields(body, partial=True)
                await self.store.run(self.store.update, slug, fields)
                await self.add_shares(app, parse_share(body.get("share")))
                if app["always_on"] or fields.get("always_on"):
                    await self.start_server(app)
                self.log.info("declared app %s is current (version %s)", slug, current["version"])
                return
        await self.publish(spec["owner"], "settings", body, managed=True, start=False)

    async def stopping(self) -> None:
        """Stop background work; close the hub connection and the database."""
        for task in self._tasks:
            task.cancel()
        await self.hub.close()
        self.store.close()


def _epoch(iso_time: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_time.rstrip("Z") + "+00:00").timestamp()


def parse_share(value: Any) -> dict[str, Any]:
    """`{"users": [...], "groups": [...], "everyone": bool}` checked (BadRequest otherwise)."""
    if value is None:
        return {"users": [], "groups": [], "everyone": False}
    if not isinstance(value, dict):
        raise BadRequest('share must be an object {"users": [...], "groups": [...], "everyone"}')
    unknown = set(value) - {"users", "groups", "everyone"}
    if unknown:
        raise BadRequest(
            f"share has unknown keys {sorted(unknown)}; allowed: users, groups, everyone"
        )
    out: dict[str, Any] = {}
    for key in ("users", "groups"):
        names = value.get(key) or []
        if not isinstance(names, list) or not all(
            isinstance(n, str) and 0 < len(n) <= 255 for n in names
        ):
            raise BadRequest(f"share.{key} must be a list of names (1-255 characters each)")
        if len(names) > 100:
            raise BadRequest(f"share.{key} names {len(names)}; at most 100 at a time")
        out[key] = list(dict.fromkeys(names))
    everyone = value.get("everyone", False)
    if not isinstance(everyone, bool):
        raise BadRequest("share.everyone must be true or false")
    out["everyone"] = everyone
    return out


def parse_app_fields(body: dict[str, Any], partial: bool) -> dict[str, Any]:
    """Title, description and always-on checked (the title is required unless `partial`)."""
    from dsml.apps.models import MAX_DESCRIPTION, MAX_TITLE

    out: dict[str, Any] = {}
    if "title" in body or not partial:
        title = body.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
            raise BadRequest(f"title must be text of 1-{MAX_TITLE} characters")
        if re.search(r"[\x00-\x1f\x7f-\x9f]", title):
            raise BadRequest(
                f"title must be one line of 1-{MAX_TITLE} characters without control characters"
            )
        out["title"] = title.strip()
    if "description" in body:
        text = body["description"]
        if text is None:
            text = ""
        if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
            raise BadRequest(f"description must be text of at most {MAX_DESCRIPTION} characters")
        if "\x00" in text:
            # PostgreSQL refuses NUL in text: a 400 here, not a 500 at the write
            raise BadRequest(
                f"description must be text of at most {MAX_DESCRIPTION} characters without NUL"
            )
        out["description"] = text
    if "always_on" in body:
        if not isinstance(body["always_on"], bool):
            raise BadRequest("always_on must be true or false")
        out["always_on"] = body["always_on"]
    return out


def declared_body(spec: dict[str, Any], root: Path) -> dict[str, Any]:
    """A publish request made from a declared app (its notebook and files read from disk)."""
    import base64

    from dsml.notebooks import read_notebook

    path = Path(spec["notebook"])
    if not path.is_absolute():
        path = root / path
    nb = read_notebook(path)
    files = {}
    if spec.get("files"):
        named = {rel: path.parent / rel for rel in spec["files"]}
    else:
        # the files the notebook's code names next to it, as `dsml publish` finds them
        from dsml.notebooks import files_named_by

        named = files_named_by(nb, path.parent)
    for rel, file in named.items():
        files[bundles.check_relative_path(rel)] = base64.b64encode(file.read_bytes()).decode()
    body: dict[str, Any] = {
        "notebook": nb,
        "notebook_path": str(spec["notebook"]),
        "files": files,
        "title": spec["title"],
        "description": spec.get("description", ""),
        "slug": spec["slug"],
        "always_on": bool(spec.get("always_on", False)),
        "share": spec.get("share") or {},
    }
    if spec.get("environment"):
        body["environment"] = spec["environment"]
    return body


def main() -> None:
    """Run the apps service."""
    AppsApp.launch_instance()
