"""Notifications: a failed run reaches the owner by e-mail (a real SMTP server on loopback)
and by webhook (a real HTTP server on loopback), both with the run's URL."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from test_scheduler_api import NOTEBOOKS, PAPERMILL, Api

from conftest import MAIL, Platform, free_port


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def wait_until(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_failure_notifies_by_mail_and_webhook(platform: Platform) -> None:
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = Api(platform, "scientist")
        notify = {"emails": ["owner@example.com"], "webhook": f"http://127.0.0.1:{port}/hook"}
        failing = api.create_job(PAPERMILL / "broken1.ipynb", name="notify me", notify=notify)
        run = api.wait(api.start(failing))
        assert run["state"] == "failed"
        wait_until(lambda: any(h["run"]["id"] == run["id"] for h in Hook.received))
        hook = next(h for h in Hook.received if h["run"]["id"] == run["id"])
        assert hook["job"]["name"] == "notify me" and hook["run"]["state"] == "failed"
        assert hook["url"].endswith(f"/services/scheduler/runs/{run['id']}")
        assert hook["url"].startswith(platform.url)
        wait_until(lambda: any(f"run {run['id']} failed" in m["data"] for m in MAIL.messages))
        mail = next(m for m in MAIL.messages if f"run {run['id']} failed" in m["data"])
        assert mail["to"] == ["owner@example.com"]
        assert hook["url"] in mail["data"]

        # a success is not announced unless the job asks for it
        quiet = api.create_job(NOTEBOOKS / "typed_params.ipynb", name="quiet", notify=notify)
        loud = api.create_job(
            NOTEBOOKS / "typed_params.ipynb", name="loud", notify={**notify, "on": "always"}
        )
        quiet_run = api.wait(api.start(quiet))
        loud_run = api.wait(api.start(loud))
        wait_until(lambda: any(h["run"]["id"] == loud_run["id"] for h in Hook.received))
        time.sleep(1)
        assert not any(h["run"]["id"] == quiet_run["id"] for h in Hook.received)
    finally:
        server.shutdown()
