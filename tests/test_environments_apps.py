"""Curated environments can be app servers: Voila and what the app server imports are in each lock.

On Kubernetes an app's named server runs the environment's image, the platform package installed
`--no-deps` (images/*/Dockerfile): whatever `dsml.apps.server` and `dsml.scheduler.worker` import
must come from the lock, since nothing is downloaded when an app starts.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from dsml.datadir import DataDir
from dsml.environments import build as env_build
from dsml.environments import find_environment, list_environments
from dsml.environments.spec import normalize_name

from conftest import ENVIRONMENTS, ROOT

ALL_ENVIRONMENTS = [env.name for env in list_environments()]

# What the app server and the worker import at run time (the platform package brings no
# dependencies into the image); websockets carries Voila's kernel channels.
APP_SERVER_PACKAGES = [
    "voila",
    "jupyterhub",
    "jupyter-server",
    "tornado",
    "httpx",
    "websockets",
    "nbconvert",
    "nbclient",
    "jupyter-client",
    "ipykernel",
    "ipywidgets",
    "papermill",
]


@pytest.mark.parametrize("name", ALL_ENVIRONMENTS)
def test_lock_pins_voila_0_5_and_what_the_app_server_imports(name: str) -> None:
    env = find_environment(name)
    voila = Version(env.packages["voila"])
    assert Version("0.5.13") <= voila < Version("0.6"), f"{name}: voila {voila}"
    hub = Version(env.packages["jupyterhub"])
    # 5.5.1 fixes a high-severity hole in user sharing, which apps use; the hub is 5.5.x
    assert Version("5.5.1") <= hub < Version("5.6"), f"{name}: jupyterhub {hub}"
    missing = [p for p in APP_SERVER_PACKAGES if normalize_name(p) not in env.packages]
    assert not missing, f"{name}: the lock lacks {missing}"


@pytest.mark.parametrize("name", ALL_ENVIRONMENTS)
def test_every_requirement_has_a_reason_and_voila_is_asked_for(name: str) -> None:
    env = find_environment(name)
    asked: dict[str, Requirement] = {}
    for line in (env.path / "requirements.in").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement, _, reason = line.partition("#")
        assert reason.strip(), f"{name}/requirements.in line without a reason: {line}"
        asked[normalize_name(Requirement(requirement).name)] = Requirement(requirement)
    assert "voila" in asked, f"{name}/requirements.in does not ask for voila"
    assert asked["voila"].specifier == SpecifierSet(">=0.5.13,<0.6"), f"{name}: {asked['voila']}"
    assert "ipywidgets" in asked, f"{name}/requirements.in does not ask for ipywidgets"


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_built_environment_imports_the_app_server(env_datadir: DataDir, name: str) -> None:
    """The built environment plus the platform's source (as --no-deps) imports the servers."""
    env = find_environment(name)
    prefix = env_build.prefix_for(env, env_datadir)
    modules = [
        "voila",
        "voila.app",
        "ipywidgets",
        "jupyterhub.services.auth",
        "dsml.scheduler.worker",
    ]
    # the app server module is the lead's (branch apps-service); import it once it is there
    if (ROOT / "extensions" / "dsml" / "apps" / "server.py").exists():
        modules.append("dsml.apps.server")
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    environ = {**os.environ, "PYTHONPATH": str(ROOT / "extensions")}
    result = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", code, *modules],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
    # Voila renders widgets with the JupyterLab widget manager it finds among the labextensions
    manager = (
        prefix / "share" / "jupyter" / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager"
    )
    assert (manager / "package.json").is_file(), f"{name}: no widget manager at {manager}"
