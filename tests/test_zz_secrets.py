"""No token or password the platform knows appears where people or other accounts can read it.

Runs last in the session (the file name sorts last; pytest runs files in that order), after
the other test files' users signed in, made tokens, ran jobs, published apps and filed
requests on the session's platform. It gathers every secret the platform knows:

* the files of `<data dir>/secrets/` (the proxy's token, the hub's cookie secret, the admin
  and usage-reader service tokens) and every service's `cookie_secret`,
* the demo users' passwords and the admin token of the `platform` fixture,
* every hub API token a test made through `conftest.hub_token` (`conftest.MADE_TOKENS`),
* each platform process's token-like environment variables (`JUPYTERHUB_API_TOKEN` of the
  hub-managed services, user and app servers and warm workers, `CONFIGPROXY_AUTH_TOKEN`, ...),

then provokes error messages with a secret in the request (a token in the query string, a
wrong token that starts with a real one) and searches, for each secret as written, JSON- or
HTML-escaped: every log file under the data dir and the platform's log, the scheduler's
database, run records and outputs (.ipynb, .html, run logs), the apps service's database and
bundles (unpacked), the portal's database, the error responses, and the argument list of
every process on the machine. A hit fails and names the secret's source and where it was.
"""

from __future__ import annotations

import gzip
import html
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import conftest
from conftest import Platform

SECRET_KEYS = re.compile(r"TOKEN|SECRET|PASSWORD|CRYPT_KEY|AUTH_KEY", re.IGNORECASE)
"""Environment variable names whose values are secrets."""

SERVICES = ("scheduler", "apps", "portal")


def _proc_stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, session id) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[3])


def platform_pids(platform: Platform) -> list[int]:
    """The `dsml up` process of the session's platform and every process below it."""
    settings = str(platform.log.parent / "settings.yaml")
    parents: dict[int, int] = {}
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(entry.name)
        if stat is None:
            continue
        parents[int(entry.name)] = stat[0]
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"up" in argv and settings.encode() in argv:
            roots.append(int(entry.name))
    assert roots, f"no `dsml up --settings {settings}` process found"
    found = set(roots)
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return sorted(found)


def process_secrets(pids: list[int]) -> dict[str, str]:
    """Token-like environment values of the processes -> 'NAME of pid N (command)'."""
    out: dict[str, str] = {}
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        command = " ".join(a.decode(errors="replace") for a in argv[:3])[:80]
        for item in raw.split(b"\0"):
            key, _, value = item.decode(errors="replace").partition("=")
            if SECRET_KEYS.search(key) and len(value) >= 16 and not value.startswith(("/", "http")):
                out.setdefault(value, f"{key} of pid {pid} ({command})")
    return out


def known_secrets(platform: Platform) -> dict[str, str]:
    """Every secret of the session's platform -> where it comes from."""
    out: dict[str, str] = {}

    def add(value: str | None, source: str) -> None:
        value = (value or "").strip()
        if len(value) >= 8:
            out.setdefault(value, source)

    root = platform.datadir.root
    for path in sorted(platform.datadir.secrets.rglob("*")):
        if path.is_file():
            add(path.read_bytes().decode("utf-8", "replace"), f"secrets/{path.name}")
    for service in SERVICES:
        secret = root / service / "cookie_secret"
        if secret.exists():
            add(secret.read_text(), f"{service}/cookie_secret")
    for name, user in platform.users.items():
        add(user.get("password"), f"the password of {name}")
    add(platform.admin_token, "the platform fixture's admin token")
    for n, token in enumerate(conftest.MADE_TOKENS):
        add(token, f"hub token {n} made by a test")
    for value, source in process_secrets(platform_pids(platform)).items():
        add(value, source)
    return out


class Finder:
    """Searches bytes for any of the secrets (as written, JSON-escaped or HTML-escaped)."""

    def __init__(self, secrets: dict[str, str]):
        self.source: dict[bytes, str] = {}
        for value, where in secrets.items():
            for form in {value, json.dumps(value)[1:-1], html.escape(value)}:
                self.source.setdefault(form.encode(), where)
        pattern = b"|".join(re.escape(s) for s in sorted(self.source, key=len, reverse=True))
        self.regex = re.compile(pattern)
        self.hits: list[str] = []

    def search(self, data: bytes, where: str) -> None:
        """Record every secret found in `data` (read from `where`)."""
        for found in {m.group() for m in self.regex.finditer(data)}:
            self.hits.append(f"{self.source[found]} found in {where}")


def database_text(path: Path) -> bytes:
    """Every row of an SQLite database as SQL text (overflow pages joined)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return "\n".join(con.iterdump()).encode()
    finally:
        con.close()


def stored_files(platform: Platform) -> Iterator[tuple[Path, str]]:
    """(file, what it is) for every file the search covers under the data dir."""
    root = platform.datadir.root
    yield platform.log, "the platform's log"
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in ("secrets", "home", "homes"):
            continue
        if path == platform.datadir.demo_users or path.name == "cookie_secret":
            continue  # where the passwords and secrets are kept (mode 0600), not a leak
        if rel.parts[0] in SERVICES:
            yield path, f"{rel.parts[0]}'s data"
        elif path.suffix == ".log" or "logs" in rel.parts:
            yield path, "a log"


@pytest.fixture(scope="module")
def secrets(platform: Platform) -> dict[str, str]:
    if not conftest.MADE_TOKENS:  # this file run alone: make one token as the other files do
        conftest.hub_token(platform, "scientist")
    found = known_secrets(platform)
    kinds = {source.split(" of ")[0] for source in found.values()}
    # the search is only worth its name if it knows the platform's main secrets
    assert "JUPYTERHUB_API_TOKEN" in kinds, sorted(kinds)
    assert any(s.startswith("secrets/") for s in found.values()), found.values()
    assert any(s.startswith("the password of") for s in found.values())
    return found


def test_error_messages_do_not_echo_secrets(platform: Platform, secrets: dict[str, str]) -> None:
    finder = Finder(secrets)
    user_token = conftest.MADE_TOKENS[-1]
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        for service in SERVICES:
            api = f"/services/{service}/api"
            answers = [
                client.get(f"{api}/no-such-thing", params={"token": user_token}),
                client.get(f"{api}/no-such-thing", params={"access_token": user_token}),
                client.get(
                    f"{api}/no-such-thing",
                    headers={"Authorization": f"token {platform.admin_token}0"},
                ),
                client.post(
                    f"{api}/" + ("jobs" if service == "scheduler" else "apps"),
                    headers={"Authorization": f"token {user_token}x"},
                    json={"name": "x"},
                ),
            ]
            for r in answers:
                assert r.status_code >= 400, (r.request.url, r.status_code)
                finder.search(r.content, f"the answer to {r.request.method} {r.request.url.path}")
                finder.search(
                    json.dumps(dict(r.headers)).encode(),
                    f"the headers of the answer to {r.request.method} {r.request.url.path}",
                )
        r = client.get("/hub/api/users", headers={"Authorization": f"token {user_token}0"})
        finder.search(r.content, "the hub's answer to a wrong token")
    assert not finder.hits, "\n".join(sorted(set(finder.hits)))


def test_no_secret_in_logs_records_outputs_or_databases(
    platform: Platform, secrets: dict[str, str]
) -> None:
    finder = Finder(secrets)
    searched = 0
    for path, what in stored_files(platform):
        where = f"{what}: {path}"
        try:
            if path.name.endswith((".sqlite", ".db")):
                finder.search(database_text(path), where + " (its rows)")
                continue
            data = path.read_bytes()
        except (OSError, sqlite3.Error):
            continue  # removed or rewritten meanwhile (a run's output moved into place)
        searched += 1
        if path.name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
                where += " (unpacked)"
            except (OSError, EOFError):
                pass
        finder.search(data, where)
    # the session's platform kept runs, apps and requests: the search saw them
    kinds = {what for _, what in stored_files(platform)}
    assert {"scheduler's data", "apps's data", "portal's data"} <= kinds, kinds
    assert searched > 10, searched
    assert not finder.hits, "\n".join(sorted(set(finder.hits)))


def test_no_secret_in_any_process_argument_list(
    platform: Platform, secrets: dict[str, str]
) -> None:
    finder = Finder(secrets)
    seen = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        seen += 1
        command = argv.split(b"\0", 1)[0].decode(errors="replace")[:60]
        finder.search(argv, f"the argument list of pid {entry.name} ({command})")
    assert seen > 10, seen
    assert len(platform_pids(platform)) >= 5
    assert not finder.hits, "\n".join(sorted(set(finder.hits)))
