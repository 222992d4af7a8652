"""The app server (`python -m dsml.apps.server`) under a real JupyterHub, driven by Chromium.

One hub for the module: users `owner`, `viewer` and `other`; the owner's named servers `app-demo`
(fetches its bundle from a stand-in apps service, which also collects the server's events) and
`app-broken` (a `--bundle-dir` notebook that raises). Voila runs the notebooks on the curated
`dsml-datascience` kernel (ipywidgets).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from dsml.apps.server import AppServerError, unpack_bundle
from dsml.datadir import DataDir

from conftest import ROOT, free_port, run_async

NOTEBOOKS = Path(__file__).parent / "notebooks"
PASSWORD = "app-server-test-pw"
OWNER, VIEWER, OTHER = "owner", "viewer", "other"
ADMIN_TOKEN = "app-server-test-admin-token-0123456789"


def bundle_bytes(notebook: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """A gzip tar bundle as the apps service makes it: notebook.ipynb plus files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {"notebook.ipynb": notebook.read_bytes(), **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class AppsSink:
    """A stand-in apps service: serves bundles, keeps the events app servers post."""

    bundles: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    url: str = ""

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = self.path.strip("/").split("/")
                if len(parts) == 4 and parts[:2] == ["api", "apps"] and parts[3] == "bundle":
                    if parts[2] in sink.bundles and self.headers.get("Authorization", ""):
                        data, headers = sink.bundles[parts[2]]
                        self.send_response(200)
                        for k, v in headers.items():
                            self.send_header(k, v)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if len(parts) == 4 and parts[3] == "events":
                    sink.events.setdefault(parts[2], []).append(json.loads(body))
                    self.send_response(204)
                else:
                    self.send_response(404)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, slug: str, data: bytes, **headers: str) -> None:
        """Serve `data` as `slug`'s bundle (the sha256 header unless given)."""
        headers.setdefault("X-Dsml-Sha256", hashlib.sha256(data).hexdigest())
        self.bundles[slug] = (data, headers)

    def views(self, slug: str) -> list[dict[str, Any]]:
        return [v for e in self.events.get(slug, []) for v in e.get("views", [])]

    def errors(self, slug: str) -> list[str]:
        return [e["error"] for e in self.events.get(slug, []) if e.get("error")]


@dataclass
class Hub:
    url: str
    sink: AppsSink
    log: Path
    tmp: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"token {ADMIN_TOKEN}"}
        return httpx.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs
        )

    def app_url(self, server: str) -> str:
        return f"{self.url}/user/{OWNER}/{server}/"

    def start_server(self, name: str) -> None:
        r = self.api("POST", f"/users/{OWNER}/servers/{name}")
        assert r.status_code in (201, 202, 400), r.text  # 400: already running
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{OWNER}").json()
            server = model["servers"].get(name)
            if server and server["ready"]:
                return
            time.sleep(0.3)
        raise AssertionError(f"{name} never got ready; hub log:\n{self.log.read_text()[-4000:]}")

    def share(self, server: str, user: str) -> None:
        r = self.api("POST", f"/shares/{OWNER}/{server}", json={"user": user})
        assert r.status_code == 200, r.text

    def unshare(self, server: str) -> None:
        """Revoke every share of the server."""
        r = self.api("DELETE", f"/shares/{OWNER}/{server}")
        assert r.status_code == 204, r.text


HUB_CONFIG = """
import os, sys
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/hub.pid"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.redirect_to_server = False
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allowed_users = {{"owner", "viewer", "other"}}
c.JupyterHub.services = [{{"name": "tester", "api_token": {admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["tester"]}}]
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home-{{username}}"
c.Spawner.http_timeout = 90
c.Spawner.start_timeout = 90

def pre_spawn(spawner):
    name = spawner.name
    cmd = [sys.executable, "-m", "dsml.apps.server", "--kernel-name", "dsml-datascience"]
    env = {{"JUPYTER_PATH": {jupyter_path!r}, "DSML_APPS_URL": {sink_url!r},
           "DSML_APP_SLUG": name.removeprefix("app-")}}
    if name == "app-broken":
        cmd += ["--bundle-dir", {broken!r}, "--pool-size", "0"]
    spawner.cmd = cmd
    spawner.environment.update(env)

c.Spawner.pre_spawn_hook = pre_spawn
"""


@pytest.fixture(scope="module")
def hub(env_datadir: DataDir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A real JupyterHub whose owner has the app servers app-demo and app-broken."""
    tmp = tmp_path_factory.mktemp("apphub")
    sink = AppsSink()
    sink.start()
    sink.add(
        "demo",
        bundle_bytes(NOTEBOOKS / "app_slider.ipynb", {"data/readme.txt": b"bundle-file-read-ok"}),
        **{"X-Dsml-App-Version": "3", "X-Dsml-Kernel": "dsml-datascience"},
    )
    broken = tmp / "broken"
    broken.mkdir()
    shutil.copy(NOTEBOOKS / "app_fails.ipynb", broken / "notebook.ipynb")
    port = free_port()
    config = tmp / "jupyterhub_config.py"
    config.write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(ROOT / "node_modules" / ".bin" / "configurable-http-proxy"),
            tmp=tmp,
            password=PASSWORD,
            admin_token=ADMIN_TOKEN,
            jupyter_path=str(env_datadir.jupyter_data),
            sink_url=sink.url,
            broken=str(broken),
        )
    )
    log = tmp / "hub.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    hub = Hub(url, sink, log, tmp)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if hub.api("GET", "/").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        hub.start_server("app-demo")
        hub.start_server("app-broken")
        hub.share("app-demo", VIEWER)
        hub.share("app-broken", VIEWER)
        yield hub
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        sink.server.shutdown()


def sign_in(browser: Any, hub: Hub, name: str) -> Any:
    """A browser page signed in to the hub as `name`."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_load_state()
    return page


def open_app(page: Any, url: str) -> Any:
    """Open an app; click through the consent page (the platform's hub config skips it)."""
    response = page.goto(url)
    if "oauth2/authorize" in page.url and page.locator("text=Authorize").count():
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_load_state()
        response = None
    return response


@pytest.fixture(scope="module")
def viewer_page(hub: Hub, browser: Any) -> Iterator[Any]:
    page = sign_in(browser, hub, VIEWER)
    yield page
    page.context.close()


def kernel_id(page: Any) -> str:
    return page.evaluate(
        "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"
    )


def cookie_header(page: Any, url: str) -> str:
    return "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies(url))


def test_viewer_moves_slider_and_sees_no_source(hub: Hub, viewer_page: Any) -> None:
    """A viewer the app is shared with gets the page (no source) and its widgets work."""
    page = viewer_page
    elsewhere: list[str] = []  # the page asks nothing of other hosts (no CDN)

    def note(request: Any) -> None:
        if request.url.startswith(("http:", "https:", "ws:", "wss:")) and not request.url.split(
            "//", 1
        )[1].startswith(hub.url.split("//", 1)[1]):
            elsewhere.append(request.url)

    page.on("request", note)
    open_app(page, hub.app_url("app-demo"))
    page.wait_for_selector("#result", timeout=30_000)
    page.remove_listener("request", note)
    assert not elsewhere, elsewhere
    assert "square: 9" in page.inner_text("#result")
    assert "do-not-show-this-source" not in page.content()
    assert "bundle-file-read-ok" in page.inner_text("body")  # the bundle's files, beside it
    page.focus(".widget-slider .noUi-handle, .widget-slider [role=slider]")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "document.querySelector('#result').textContent.includes('square: 16')", timeout=15_000
    )
    # warm pages: a preheated kernel with the notebook already run
    times = []
    for _ in range(3):
        started = time.monotonic()
        page.goto(hub.app_url("app-demo"))
        page.wait_for_selector("#result")
        times.append(time.monotonic() - started)
    print(f"warm app page through the hub: {', '.join(f'{t:.2f}s' for t in times)}")


def test_callback_error_is_clean(hub: Hub, viewer_page: Any) -> None:
    """A widget callback that raises: the viewer sees a plain message, the owner the error."""
    page = viewer_page
    open_app(page, hub.app_url("app-demo"))
    page.wait_for_selector("#result")
    page.focus(".widget-slider .noUi-handle, .widget-slider [role=slider]")
    page.keyboard.press("Home")
    page.wait_for_selector("text=This app hit an error", timeout=15_000)
    assert "secret-callback-detail" not in page.content()
    assert "Traceback" not in page.inner_text("body")
    deadline = time.monotonic() + 10
    while not hub.sink.errors("demo") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert any("secret-callback-detail" in e for e in hub.sink.errors("demo"))


def test_anonymous_goes_to_login(hub: Hub) -> None:
    r = httpx.get(hub.app_url("app-demo"), follow_redirects=False)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["location"]
    r = httpx.get(hub.app_url("app-demo"), follow_redirects=True)
    assert "/hub/login" in str(r.url)
    for path in ("api/kernels", "voila/static/voila.js", "api/kernels/x/channels"):
        assert httpx.get(hub.app_url("app-demo") + path).status_code == 403, path
    # a token in a URL never reaches the server's log (its tail goes to the app's owner)
    r = httpx.get(hub.app_url("app-demo") + "api/kernels?token=token-in-the-url-0123")
    assert r.status_code == 403
    time.sleep(0.5)
    assert "token-in-the-url-0123" not in hub.log.read_text()


def test_other_user_is_refused(hub: Hub, browser: Any) -> None:
    page = sign_in(browser, hub, OTHER)
    try:
        response = page.goto(hub.app_url("app-demo"))
        if "oauth2/authorize" in page.url and page.locator("text=Authorize").count():
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_load_state()
        text = page.content()
        assert (response is not None and response.status == 403) or "403" in text, text[:2000]
        assert "do-not-show-this-source" not in text and "square" not in text
        assert page.locator("#result").count() == 0
    finally:
        page.context.close()


def test_only_the_page_is_served(hub: Hub, viewer_page: Any) -> None:
    """No contents, sessions, terminals, tree, kernels API; only the page's own kernel model."""
    page = viewer_page
    open_app(page, hub.app_url("app-demo"))
    page.wait_for_selector("#result")
    base = hub.app_url("app-demo")
    request = page.context.request
    for path in (
        "api/kernels",
        "api/contents",
        "api/contents/notebook.ipynb",
        "api/sessions",
        "api/terminals",
        "terminals",
        "terminals/1",
        "voila/tree",
        "voila/render/notebook.ipynb",
        "voila/files/notebook.ipynb",
        "voila/files/data/readme.txt",
        "notebook.ipynb",
        "tree",
        "api/kernelspecs",
        "api/kernels/00000000-0000-0000-0000-000000000000",
    ):
        r = request.get(base + path, max_redirects=0)
        assert r.status in (403, 404, 405), (path, r.status)
        assert "do-not-show-this-source" not in r.text()
    kid = kernel_id(page)
    assert request.delete(base + f"api/kernels/{kid}").status in (403, 405)
    assert request.post(base + f"api/kernels/{kid}/restart").status in (403, 404, 405)
    assert request.post(base + f"api/kernels/{kid}/interrupt").status in (403, 404, 405)
    # the kernel is still there and the page still works
    page.focus(".widget-slider .noUi-handle, .widget-slider [role=slider]")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        "document.querySelector('#result').textContent.includes('square: 4')", timeout=15_000
    )


async def _ws_roundtrip(url: str, cookie: str, marker: Path, binary: bool) -> dict[str, Any]:
    """Send kernel_info_request (answered) then execute_request (must not run) over the socket."""
    from jupyter_client.session import Session
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

    session = Session(key=b"")
    subprotocols = ["v1.kernel.websocket.jupyter.org"] if binary else None
    ws = await websocket_connect(
        HTTPRequest(url, headers={"Cookie": cookie}), subprotocols=subprotocols
    )

    def send(kind: str, content: dict[str, Any]) -> str:
        msg = session.msg(kind, content)
        if binary:
            parts = [
                json.dumps(msg[k], default=str).encode()
                for k in ("header", "parent_header", "metadata", "content")
            ]
            ws.write_message(serialize_msg_to_ws_v1(parts, "shell"), binary=True)
        else:
            ws.write_message(json.dumps({**msg, "channel": "shell"}, default=str))
        return msg["header"]["msg_id"]

    code = f"open({str(marker)!r}, 'w').write('ran')"
    send("execute_request", {"code": code, "silent": False, "store_history": False})
    send("inspect_request", {"code": "open", "cursor_pos": 4, "detail_level": 1})
    send("complete_request", {"code": "op", "cursor_pos": 2})
    info_id = send("kernel_info_request", {})
    replies: dict[str, Any] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(ws.read_message(), 15)
        assert raw is not None, "the socket closed"
        if isinstance(raw, bytes):
            from jupyter_server.services.kernels.connection.base import (
                deserialize_msg_from_ws_v1,
            )

            _, parts = deserialize_msg_from_ws_v1(raw)
            msg = {"header": json.loads(parts[0]), "parent_header": json.loads(parts[1])}
        else:
            msg = json.loads(raw)
        kind = msg["header"]["msg_type"]
        if kind.endswith("_reply"):
            replies[kind] = msg
        if msg["parent_header"].get("msg_id") == info_id and kind == "kernel_info_reply":
            break
    await asyncio.sleep(1.5)  # an execute_request let through would have run by now
    ws.close()
    return replies


@pytest.mark.parametrize("binary", [False, True], ids=["json", "v1-binary"])
def test_execute_request_does_not_run(
    hub: Hub, viewer_page: Any, tmp_path: Path, binary: bool
) -> None:
    page = viewer_page
    open_app(page, hub.app_url("app-demo"))
    page.wait_for_selector("#result")
    kid = kernel_id(page)
    marker = tmp_path / f"executed-{binary}"
    url = hub.app_url("app-demo").replace("http", "ws", 1) + f"api/kernels/{kid}/channels"
    replies = run_async(
        _ws_roundtrip(url, cookie_header(page, hub.app_url("app-demo")), marker, binary)
    )
    assert "kernel_info_reply" in replies  # the socket works
    assert not {"execute_reply", "inspect_reply", "complete_reply"} & set(replies)
    assert not marker.exists()


def test_viewers_at_once_each_get_a_working_kernel(
    hub: Hub, viewer_page: Any, tmp_path: Path
) -> None:
    """Pages opened together each get their own kernel, and every kernel answers.

    Kernels started at the same moment once took the same unix sockets (jupyter_client numbers
    a shared prefix's sockets by the files already there): their pages rendered against the
    wrong kernel or not at all.
    """
    page = viewer_page
    url = hub.app_url("app-demo")
    open_app(page, url)
    page.wait_for_selector("#result")
    cookie = cookie_header(page, url)
    viewers = 5

    async def visit(client: httpx.AsyncClient, n: int) -> tuple[str, dict[str, Any]]:
        r = await client.get(url, headers={"Cookie": cookie}, timeout=120)
        assert r.status_code == 200, r.text[-500:]
        assert "square: 9" in r.text
        found = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', r.text)
        assert found, r.text[-500:]
        kid = found.group(1)
        ws = url.replace("http", "ws", 1) + f"api/kernels/{kid}/channels"
        return kid, await _ws_roundtrip(ws, cookie, tmp_path / f"ran-{n}", binary=False)

    async def all_at_once() -> list[tuple[str, dict[str, Any]]]:
        async with httpx.AsyncClient() as client:
            found = await asyncio.gather(*(visit(client, n) for n in range(viewers)))
            xsrf = "viewers-at-once"
            for kid, _ in found:  # the page's closing beacon, so the kernels go
                await client.post(
                    url + f"voila/api/shutdown/{kid}",
                    headers={"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
                )
            return found

    found = run_async(all_at_once())
    assert len({kid for kid, _ in found}) == viewers
    for _, replies in found:
        assert "kernel_info_reply" in replies


def test_failing_notebook_shows_clean_page_and_tells_owner(hub: Hub, viewer_page: Any) -> None:
    page = viewer_page
    response = open_app(page, hub.app_url("app-broken"))
    page.wait_for_selector("text=This app failed to run")
    text = page.content()
    assert response is None or response.status == 500
    assert "Broken demo" in text
    for leak in ("secret-failure-detail", "Traceback", "RuntimeError", "/tmp", "dsml-app-"):
        assert leak not in text, leak
    deadline = time.monotonic() + 10
    while not hub.sink.errors("broken") and time.monotonic() < deadline:
        time.sleep(0.3)
    errors = hub.sink.errors("broken")
    assert errors and "secret-failure-detail" in errors[-1]
    event = hub.sink.events["broken"][-1]
    assert any("secret-failure-detail" in line for line in event["log"]), event["log"][-20:]


def test_views_and_activity_reported(hub: Hub, viewer_page: Any) -> None:
    before = time.time()
    open_app(viewer_page, hub.app_url("app-demo"))
    viewer_page.wait_for_selector("#result")
    deadline = time.monotonic() + 10
    while not hub.sink.views("demo") and time.monotonic() < deadline:
        time.sleep(0.3)
    views = hub.sink.views("demo")
    assert views and {v["viewer"] for v in views} == {VIEWER}
    assert all(v["version"] == 3 and 0 < v["render_seconds"] < 30 for v in views)
    seconds = sorted(v["render_seconds"] for v in views)
    print(f"server-side render of {len(seconds)} views: p50 {seconds[len(seconds) // 2]:.3f}s")
    model = hub.api("GET", f"/users/{OWNER}").json()
    from datetime import datetime

    last = datetime.fromisoformat(
        model["servers"]["app-demo"]["last_activity"].replace("Z", "+00:00")
    )
    assert last.timestamp() >= before - 61  # reported at most a minute apart


def test_revoking_the_share_locks_the_viewer_out(hub: Hub, viewer_page: Any) -> None:
    page = viewer_page
    open_app(page, hub.app_url("app-demo"))
    page.wait_for_selector("#result")
    kid = kernel_id(page)
    url = hub.app_url("app-demo").replace("http", "ws", 1) + f"api/kernels/{kid}/channels"
    cookie = cookie_header(page, hub.app_url("app-demo"))

    connected, closed = threading.Event(), threading.Event()

    async def hold_socket() -> None:
        ws = await websocket_connect(HTTPRequest(url, headers={"Cookie": cookie}))
        connected.set()
        while await asyncio.wait_for(ws.read_message(), 60) is not None:
            pass
        closed.set()

    holder = threading.Thread(target=asyncio.run, args=(hold_socket(),), daemon=True)
    holder.start()
    assert connected.wait(15)
    hub.unshare("app-demo")
    revoked = time.monotonic()
    r = page.context.request.get(hub.app_url("app-demo"), max_redirects=0)
    assert r.status == 403, r.status  # the very next request
    assert "You do not have access to this app" in r.text()
    assert closed.wait(35), "the open page's websocket stayed open"
    closed_after = time.monotonic() - revoked
    assert closed_after <= 31
    page.goto(hub.app_url("app-demo"))
    assert page.locator("#result").count() == 0


def test_unpack_refuses_escapes(tmp_path: Path) -> None:
    def tar_with(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
        return buf.getvalue()

    for name in ("../evil", "/etc/evil", "a/../../evil"):
        with pytest.raises(AppServerError, match="relative path"):
            unpack_bundle(tar_with(tarfile.TarInfo(name), b"x"), tmp_path)
    link = tarfile.TarInfo("notebook.ipynb")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(AppServerError, match="link"):
        unpack_bundle(tar_with(link), tmp_path)
    assert not list(tmp_path.iterdir())


def test_start_up_failure_is_reported(hub: Hub) -> None:
    """A bundle whose sha256 does not match: the error reaches the apps service, exit 1."""
    data = bundle_bytes(NOTEBOOKS / "app_slider.ipynb")
    hub.sink.add("tampered", data, **{"X-Dsml-Sha256": "0" * 64})
    env = {
        **os.environ,
        "JUPYTERHUB_API_TOKEN": "not-checked-by-the-sink",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{free_port()}/user/owner/app-tampered/",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/owner/app-tampered/",
        "DSML_APPS_URL": hub.sink.url,
        "DSML_APP_SLUG": "tampered",
    }
    r = subprocess.run(
        [sys.executable, "-m", "dsml.apps.server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1, r.stderr
    assert "X-Dsml-Sha256" in r.stderr
    assert "X-Dsml-Sha256" in hub.sink.errors("tampered")[-1]
