"""An app server needs no network: spawned in a network namespace with none, it still serves.

Nothing is downloaded when an app starts (unlike jhub-apps, which fetches its proxy from GitHub
at every spawn). The test runs `python -m dsml.apps.server` with a bundle folder inside
`unshare -n` (a namespace with only a loopback interface, and the hub unreachable), waits for
its kernel pool to fill (the notebook executed ahead of viewers) and asks for the page from
inside the namespace: the server answers (with the hub's login, as for any anonymous visitor).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, env_datadir  # noqa: F401 - the fixture builds the environments

NOTEBOOK = ROOT / "tests" / "notebooks" / "widget_slider.ipynb"


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare -n needs root")
def test_app_server_serves_without_a_network(env_datadir, tmp_path: Path) -> None:  # noqa: F811
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(NOTEBOOK, bundle / "notebook.ipynb")
    kernel = json.loads(NOTEBOOK.read_text())["metadata"]["kernelspec"]["name"]
    port = 18765
    prefix = "/user/owner/app-offline/"
    script = textwrap.dedent(
        f"""
        ip link set lo up
        {sys.executable} -m dsml.apps.server --bundle-dir {bundle} --kernel-name {kernel} \\
            > {tmp_path}/server.log 2>&1 &
        server=$!
        for i in $(seq 240); do
            grep -q "filled with 1 kernel" {tmp_path}/server.log && break
            kill -0 $server 2>/dev/null || break
            sleep 0.5
        done
        {sys.executable} -c "import urllib.request as u, sys
        class NoRedirect(u.HTTPRedirectHandler):
            def redirect_request(self, *a): return None
        try:
            u.build_opener(NoRedirect).open('http://127.0.0.1:{port}{prefix}', timeout=20)
        except u.HTTPError as e:
            print('STATUS', e.code, e.headers.get('Location'))
        "
        kill $server
        wait $server
        """
    )
    env = {
        **os.environ,
        "JUPYTER_PATH": str(env_datadir.jupyter_data),
        "JUPYTERHUB_API_TOKEN": "offline-test-token",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-owner-app-offline",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": prefix + "oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": '["access:servers!server=owner/app-offline"]',
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_SERVER_NAME": "app-offline",
        "JUPYTERHUB_USER": "owner",
        "JUPYTERHUB_HOST": "",
        "DSML_APPS_URL": "",
    }
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = (tmp_path / "server.log").read_text()
    assert "filled with 1 kernel" in log, log[-3000:]
    # the page answers: an anonymous visitor is sent to the hub's login
    assert "STATUS 302" in run.stdout, run.stdout + run.stderr + log[-3000:]
    assert "/hub/api/oauth2/authorize" in run.stdout or "login" in run.stdout, run.stdout
