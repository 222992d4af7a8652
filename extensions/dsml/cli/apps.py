"""`dsml publish | apps ...`: notebooks as Voila apps, through the apps service's REST API.

A thin layer over `/services/apps/api/` (see the apps service's OpenAPI file). Like `dsml run`,
it finds the hub at --hub-url / DSML_HUB_URL (default http://127.0.0.1:8000) and authenticates
with JUPYTERHUB_API_TOKEN or --token-file, so inside a user server it just works. On the
platform's machine, with neither set, it falls back to the CLI's admin token (DSML_ADMIN_TOKEN
or the data dir's secret) for the admin's commands: listing every app, stopping, deleting.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dsml.cli.options import add_location_options, resolve
from dsml.client import APPS, Client, find_hub_url, service_api
from dsml.datadir import ADMIN_TOKEN_SECRET
from dsml.exceptions import DsmlError, SettingsError
from dsml.kernels import notebook_environment
from dsml.notebooks import files_named_by, read_notebook

MAX_FILES = 20
"""Most files a publish takes with the notebook (the apps service's and JupyterLab's limit)."""

MAX_BYTES = 20 * 2**20
"""Most bytes, all files together, a publish takes with the notebook."""


def _connection_options(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--hub-url, --token, --token-file, --json, and where the admin token lives.

    `suppress`: on an `apps` subcommand, an option left out keeps what `dsml apps --json ...`
    set before the subcommand (argparse would otherwise reset it to the default).
    """
    default: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--hub-url", default=default, help="hub URL (default: $DSML_HUB_URL or :8000)")
    p.add_argument(
        "--token",
        default=default,
        help="hub API token; shows in the process list: prefer $JUPYTERHUB_API_TOKEN or "
        "--token-file",
    )
    p.add_argument("--token-file", default=default, help="file holding the hub API token")
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print JSON",
    )
    if suppress:
        p.add_argument("--settings", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        p.add_argument("--data-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    else:
        add_location_options(p)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml publish` and `dsml apps`."""
    publish = sub.add_parser(
        "publish",
        help="publish a notebook as a Voila app (a new app, or a new version of yours)",
        description="Publish a notebook as a Voila app and print its link. With --slug of an "
        "app you own, publish a new version of it (its link stays the same).",
    )
    publish.add_argument("notebook", help="path of the .ipynb file")
    publish.add_argument("--title", default=None, help="the app's title (kept for a new version)")
    publish.add_argument(
        "--env", default=None, help="curated environment (default: the notebook's kernel's)"
    )
    publish.add_argument("--description", default=None, help="one or two sentences")
    publish.add_argument(
        "--share-group", action="append", default=[], metavar="GROUP", help="(repeatable)"
    )
    publish.add_argument(
        "--share-user", action="append", default=[], metavar="USER", help="(repeatable)"
    )
    publish.add_argument("--everyone", action="store_true", help="share with every signed-in user")
    publish.add_argument(
        "--slug",
        default=None,
        help="the app's short name in its link: a-z, 0-9, '-', at most 26 (default: from the "
        "title); the slug of an app you own publishes a new version of it",
    )
    publish.add_argument(
        "--always-on", action="store_true", help="keep the app's server running (never culled)"
    )
    publish.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="a file or folder the notebook reads, relative to the notebook's folder "
        f"(repeatable; default: the files its code names; at most {MAX_FILES} files, "
        f"{MAX_BYTES // 2**20} MiB)",
    )
    _connection_options(publish)
    publish.set_defaults(func=run_publish)

    apps = sub.add_parser(
        "apps",
        help="list, show, share, roll back, stop and delete apps",
        description="Without an action: the apps you own and the apps shared with you.",
    )
    apps.add_argument("--all", action="store_true", help="(admins) every user's apps")
    apps.add_argument("--owned", action="store_true", help="only the apps you own")
    _connection_options(apps)
    apps.set_defaults(func=run_list)
    actions = apps.add_subparsers(dest="apps_command", metavar="ACTION")

    def action(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help)
        p.add_argument("slug", help="the app's slug")
        p.set_defaults(func=func)
        return p

    show = action("show", "an app and its versions", run_show)
    rollback = action("rollback", "make an earlier version current", run_rollback)
    rollback.add_argument("version", type=int, help="version number (see `dsml apps show`)")
    share = action("share", "share an app with users, groups or everyone", run_share)
    unshare = action("unshare", "take shares away (at once)", run_unshare)
    for p in (share, unshare):
        p.add_argument("--user", action="append", default=[], metavar="USER")
        p.add_argument("--group", action="append", default=[], metavar="GROUP")
        p.add_argument("--everyone", action="store_true", help="every signed-in user")
    logs = action("logs", "the app server's log tail and its last error", run_logs)
    start = action("start", "start the app's server", run_start)
    start.add_argument("--wait", action="store_true", help="wait until it serves (or fails)")
    start.add_argument("--timeout", type=float, default=120, help="for --wait, seconds")
    stop = action("stop", "stop the app's server (the link wakes it again)", run_stop)
    delete = action("delete", "delete the app, every version and its shares", run_delete)
    usage = action("usage", "views, unique viewers and time to first render", run_usage)
    for p in (show, rollback, share, unshare, logs, start, stop, delete, usage):
        _connection_options(p, suppress=True)


def _token(args: argparse.Namespace) -> str:
    """The caller's token: --token, --token-file, $JUPYTERHUB_API_TOKEN, then the admin's."""
    if getattr(args, "token", None):
        print(
            "warning: --token shows the token in the process list; set JUPYTERHUB_API_TOKEN "
            "or use --token-file",
            file=sys.stderr,
        )
        return str(args.token)
    if getattr(args, "token_file", None):
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as e:
            raise SettingsError(f"cannot read --token-file {args.token_file}: {e}") from None
    token = os.environ.get("JUPYTERHUB_API_TOKEN") or os.environ.get("DSML_ADMIN_TOKEN")
    if token:
        return token
    # the platform's admin on its machine: the CLI's own token, as `dsml users` uses it
    if args.command != "publish":
        try:
            _, datadir = resolve(args)
            return (datadir.secrets / ADMIN_TOKEN_SECRET).read_text().strip()
        except (OSError, DsmlError):
            pass
    raise SettingsError("no hub API token: set JUPYTERHUB_API_TOKEN or pass --token-file FILE")


def _hub_url(args: argparse.Namespace) -> str:
    explicit = getattr(args, "hub_url", None)
    if explicit or os.environ.get("DSML_HUB_URL"):
        return find_hub_url(None, explicit)
    try:
        _, datadir = resolve(args)  # the URL `dsml up` recorded, when this is its machine
    except DsmlError:
        datadir = None
    return find_hub_url(datadir)


def client_for(args: argparse.Namespace) -> Client:
    """The apps API client from flags or the environment."""
    for name in ("settings", "data_dir", "hub_url", "token", "token_file"):
        if not hasattr(args, name):
            setattr(args, name, None)
    token = _token(args)
    client = Client(_hub_url(args) + service_api(APPS), token)
    client.hint_403 = " (set JUPYTERHUB_API_TOKEN or pass --token-file)"
    return client


def absolute(client: Client, url: str | None) -> str | None:
    """An API link made absolute (the API may return paths below the platform's URL)."""
    base = client.base_url.split(service_api(APPS))[0]
    return base + url if url and url.startswith("/") else url


def _path(slug: str, *rest: str) -> str:
    return "/".join(["apps", quote(slug, safe=""), *(quote(r, safe="") for r in rest)])


# ---- publish -------------------------------------------------------------------------------


def _walk(path: Path) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(path, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / n for n in sorted(names) if not n.startswith(".")]
    return found


def given_files(folder: Path, paths: list[str]) -> dict[str, Path]:
    """The --file paths (files or folders, relative to the notebook's folder) as path -> file.

    Same limits as the files found by `files_named_by`; a path outside the notebook's folder
    is refused (the app finds its files next to the notebook, nowhere else).
    """
    root = folder.resolve()
    chosen: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_absolute() or ".." in path.parts:
            raise SettingsError(
                f"--file {raw}: give a path relative to the notebook's folder {root}, without '..'"
            )
        full = root / path
        if not full.exists():
            raise SettingsError(f"--file {raw}: no such file in {root}")
        if not full.resolve().is_relative_to(root):
            raise SettingsError(f"--file {raw}: a link out of the notebook's folder {root}")
        files = _walk(full) if full.is_dir() else [full]
        for f in files:
            if f.is_file() and f.resolve().is_relative_to(root):
                chosen[f.relative_to(root).as_posix()] = f
    if len(chosen) > MAX_FILES:
        raise SettingsError(f"--file names {len(chosen)} files; the limit is {MAX_FILES}")
    total = sum(f.stat().st_size for f in chosen.values())
    if total > MAX_BYTES:
        raise SettingsError(
            f"--file names {total:,} bytes in all; the limit is {MAX_BYTES:,}: "
            "move large data out of the app"
        )
    return dict(sorted(chosen.items()))


def _notebook_path(path: Path) -> str | None:
    """Where the notebook sits in the author's home (the key re-publishing finds the app by)."""
    try:
        return path.resolve().relative_to(Path.home().resolve()).as_posix()
    except ValueError:
        return None


def publish_body(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    """The `POST /apps` body for `dsml publish`'s flags."""
    path = Path(args.notebook)
    nb = read_notebook(path)
    folder = path.resolve().parent
    files = given_files(folder, args.file) if args.file else files_named_by(nb, folder)
    files.pop(path.resolve().relative_to(folder).as_posix(), None)  # the notebook itself
    title = args.title
    if title is None:
        if not args.slug:
            raise SettingsError("--title is needed for a new app (or --slug of an app you own)")
        # a new version keeps the app's title unless told otherwise
        title = client.call("GET", _path(args.slug))["title"]
    body: dict[str, Any] = {"notebook": nb, "title": title}
    environment = args.env or notebook_environment(nb)
    if environment:
        body["environment"] = environment
    notebook_path = _notebook_path(path)
    if notebook_path:
        body["notebook_path"] = notebook_path
    if files:
        body["files"] = {k: base64.b64encode(f.read_bytes()).decode() for k, f in files.items()}
    for key, value in (("description", args.description), ("slug", args.slug)):
        if value is not None:
            body[key] = value
    if args.share_user or args.share_group or args.everyone:
        body["share"] = {
            "users": args.share_user,
            "groups": args.share_group,
            "everyone": args.everyone,
        }
    if args.always_on:
        body["always_on"] = True
    return body


def run_publish(args: argparse.Namespace) -> int:
    """Carry out `dsml publish`: print the app's link (with --json: slug, version, url, ...)."""
    with client_for(args) as client:
        body = publish_body(args, client)
        answer = client.call("POST", "apps", body)
    app, version = answer["app"], answer["version"]
    url = absolute(client, answer.get("url") or app.get("url"))
    if args.json:
        record = {
            "slug": app["slug"],
            "version": version["version"],
            "url": url,
            "title": app["title"],
            "owner": app["owner"],
            "environment": version.get("environment"),
            "environment_version": version.get("environment_version"),
            "files": version.get("files", []),
            "sha256": version.get("sha256"),
            "shared": app.get("shared"),
        }
        print(json.dumps(record, indent=2))
    else:
        files = version.get("files") or []
        print(
            f"published {app['slug']} version {version['version']}"
            + (f" with {len(files)} file(s): {', '.join(files)}" if files else ""),
            file=sys.stderr,
        )
        print(url)
    return 0


# ---- apps ----------------------------------------------------------------------------------


def shared_text(shared: dict[str, Any] | None) -> str:
    """An app's shares on one line: `everyone, group:stakeholders, user:sam` (or `-`)."""
    shared = shared or {}
    parts = ["everyone"] if shared.get("everyone") else []
    parts += [f"group:{g}" for g in shared.get("groups") or []]
    parts += [f"user:{u}" for u in shared.get("users") or []]
    return ", ".join(parts) or "-"


def run_list(args: argparse.Namespace) -> int:
    """Carry out `dsml apps`: a table of slug, title, owner, version, shares and link."""
    params = {}
    if args.all:
        params["all"] = "1"
    if args.owned:
        params["owned"] = "1"
    with client_for(args) as client:
        apps = list(client.pages("apps", "apps", params))
    for app in apps:
        app["url"] = absolute(client, app.get("url"))
    if args.json:
        print(json.dumps(apps, indent=2))
        return 0
    if not apps:
        print("no apps yet: publish one with `dsml publish NOTEBOOK --title TITLE`")
        return 0
    print(f"{'SLUG':<26} {'TITLE':<28} {'OWNER':<14} {'VER':>4}  {'SHARED WITH':<30} URL")
    for a in apps:
        print(
            f"{a['slug']:<26} {a['title'][:28]:<28} {a['owner'][:14]:<14} "
            f"{a['current_version']:>4}  {shared_text(a.get('shared'))[:30]:<30} {a['url']}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Carry out `dsml apps show SLUG`: the app and its versions, newest first."""
    with client_for(args) as client:
        app = client.call("GET", _path(args.slug))
        versions = client.call("GET", _path(args.slug, "versions"))["versions"]
    app["url"] = absolute(client, app.get("url"))
    if args.json:
        print(json.dumps({"app": app, "versions": versions}, indent=2))
        return 0
    print(f"{app['title']}  ({app['slug']}, owner {app['owner']})")
    if app.get("description"):
        print(f"  {app['description']}")
    print(f"  url:             {app['url']}")
    print(f"  current version: {app['current_version']}")
    # the App model may not carry the environment: the current version's is the one served
    current = next((v for v in versions if v["version"] == app["current_version"]), {})
    environment = current.get("environment") or app.get("environment") or "-"
    if current.get("environment_version"):
        environment += f" (version {current['environment_version']})"
    print(f"  environment:     {environment}")
    print(f"  shared with:     {shared_text(app.get('shared'))}")
    print(f"  always on:       {'yes' if app.get('always_on') else 'no'}")
    print(f"  updated:         {(app.get('updated') or '')[:19]}")
    print(f"  {'VERSION':>7}  {'CREATED':<19}  {'AUTHOR':<14} {'ENVIRONMENT':<24} FILES")
    for v in versions:
        mark = "*" if v["version"] == app["current_version"] else " "
        env = v.get("environment") or ""
        if v.get("environment_version"):
            env += f"@{v['environment_version']}"
        print(
            f"{mark} {v['version']:>7}  {(v.get('created') or '')[:19]:<19}  "
            f"{(v.get('author') or '')[:14]:<14} {env[:24]:<24} {', '.join(v.get('files') or [])}"
        )
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    """Carry out `dsml apps rollback SLUG VERSION`."""
    with client_for(args) as client:
        app = client.call("POST", _path(args.slug, "rollback"), {"version": args.version})
    if args.json:
        print(json.dumps(app, indent=2))
    else:
        print(f"{app['slug']}: version {app['current_version']} is current")
    return 0


def _print_shares(args: argparse.Namespace, slug: str, shares: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(shares, indent=2))
    else:
        print(f"{slug} is shared with: {shared_text(shares)}")


def _wanted(args: argparse.Namespace, verb: str) -> None:
    if not (args.user or args.group or args.everyone):
        raise SettingsError(f"{verb}: name at least one --user, --group or --everyone")


def run_share(args: argparse.Namespace) -> int:
    """Carry out `dsml apps share SLUG`: add users, groups or everyone (unknown ones: 400)."""
    _wanted(args, "share")
    body = {"users": args.user, "groups": args.group, "everyone": args.everyone}
    with client_for(args) as client:
        shares = client.call("POST", _path(args.slug, "shares"), body)
    _print_shares(args, args.slug, shares)
    return 0


def run_unshare(args: argparse.Namespace) -> int:
    """Carry out `dsml apps unshare SLUG`: each share goes at once."""
    _wanted(args, "unshare")
    with client_for(args) as client:
        shares = None
        for user in args.user:
            shares = client.call("DELETE", _path(args.slug, "shares", "users", user))
        for group in args.group:
            shares = client.call("DELETE", _path(args.slug, "shares", "groups", group))
        if args.everyone:
            shares = client.call("DELETE", _path(args.slug, "shares", "everyone"))
    _print_shares(args, args.slug, shares or {})
    return 0


def run_logs(args: argparse.Namespace) -> int:
    """Carry out `dsml apps logs SLUG`: the server's log tail, then its last error."""
    with client_for(args) as client:
        logs = client.call("GET", _path(args.slug, "logs"))
    if args.json:
        print(json.dumps(logs, indent=2))
        return 0
    for line in logs.get("lines") or []:
        print(line)
    if logs.get("error"):
        print(f"error: {logs['error']}")
    elif not logs.get("lines"):
        print(f"no log yet for {args.slug}", file=sys.stderr)
    return 0


def _print_status(args: argparse.Namespace, status: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        line = f"{args.slug}: {status['state']}"
        if status.get("message"):
            line += f" ({status['message']})"
        print(line)


def run_start(args: argparse.Namespace) -> int:
    """Carry out `dsml apps start SLUG` (with --wait: until it serves; exit 1 if it fails)."""
    with client_for(args) as client:
        status = client.call("POST", _path(args.slug, "start"))
        started = time.monotonic()
        seen = {status["state"]}
        while args.wait and not status.get("ready") and status["state"] != "failed":
            # back at "stopped" after starting (or never leaving it): the spawn ended, and
            # a server that died before it could report shows no "failed"
            if status["state"] == "stopped" and (
                seen - {"stopped"} or time.monotonic() - started > 10
            ):
                status = {**status, "state": "failed"}
                break
            if time.monotonic() - started > args.timeout:
                raise DsmlError(
                    f"{args.slug} did not serve within {args.timeout:g} s "
                    f"(state {status['state']}); see `dsml apps logs {args.slug}`"
                )
            time.sleep(0.5)
            status = client.call("GET", _path(args.slug, "status"))
            seen.add(status["state"])
    _print_status(args, status)
    if status["state"] == "failed":
        print(f"see `dsml apps logs {args.slug}`", file=sys.stderr)
        return 1
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Carry out `dsml apps stop SLUG`."""
    with client_for(args) as client:
        status = client.call("POST", _path(args.slug, "stop"))
    _print_status(args, status)
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """Carry out `dsml apps delete SLUG`: the app, all its versions and shares go."""
    with client_for(args) as client:
        client.request("DELETE", _path(args.slug))
    if args.json:
        print(json.dumps({"slug": args.slug, "deleted": True}))
    else:
        print(f"deleted {args.slug}")
    return 0


def run_usage(args: argparse.Namespace) -> int:
    """Carry out `dsml apps usage SLUG`: views, unique viewers, p50 time to first render."""
    with client_for(args) as client:
        usage = client.call("GET", _path(args.slug, "usage"))
    if args.json:
        print(json.dumps(usage, indent=2))
        return 0

    def seconds(x: float | None) -> str:
        return f"{x:.2f} s" if x is not None else "-"

    print(f"{'VERSION':>7}  {'VIEWS':>7}  {'VIEWERS':>7}  FIRST RENDER (p50)")
    for v in usage.get("versions") or []:
        print(
            f"{v['version']:>7}  {v['views']:>7}  {v['unique_viewers']:>7}  "
            f"{seconds(v.get('render_seconds_p50'))}"
        )
    print(
        f"{'all':>7}  {usage['views']:>7}  {usage['unique_viewers']:>7}  "
        f"{seconds(usage.get('render_seconds_p50'))}"
    )
    return 0
