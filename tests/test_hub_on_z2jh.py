"""The hub pod's configuration loads in a real JupyterHub: z2jh 4.4.0's own config, then ours.

z2jh's `jupyterhub_config.py` (from ../shared/corpus/z2jh-4.4.0/chart/files/hub/) reads fixed
paths under /usr/local/etc/jupyterhub/ (the hub ConfigMap and Secret). The check runs in a
child process with a private mount namespace (`unshare -m`) and tmpfs mounts there and at
/usr/local/etc/dsml/, so the machine's folders are never touched. The values are z2jh's
defaults with our chart's intended hub values deep-merged on (Helm's way), as the chart
renders them into the hub Secret's values.yaml. Also: the JupyterHub pins agree everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
Z2JH = ROOT.parent / "shared" / "corpus" / "z2jh-4.4.0"

pytest.importorskip("kubespawner", reason="jupyterhub-kubespawner is a test dependency")


def helm_merge(base: dict, override: dict) -> dict:
    """Helm's values merge: maps merge, lists and scalars replace, null deletes."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = helm_merge(out[key], value)
        else:
            out[key] = value
    return out


def hub_values() -> dict:
    """z2jh's defaults + what our chart sets under `jupyterhub:` (generated services/roles)."""
    from dsml.hub.kubernetes import helm_values

    defaults = yaml.safe_load((Z2JH / "values.yaml").read_text())
    ours = {
        "hub": {
            **helm_values()["hub"],
            "image": {"name": "dsml-platform/hub", "tag": "0.1.0"},
        },
        "singleuser": {"cloudMetadata": {"blockWithIptables": False}},
        "cull": {"enabled": True},
    }
    values = helm_merge(defaults, ours)
    values["Chart"] = {"Name": "jupyterhub", "Version": "4.4.0", "AppVersion": "5.5.0"}
    values["Release"] = {"Name": "dsml", "Namespace": "dsml", "Service": "Helm"}
    return values


DSML_VALUES = {
    "environments": {
        "datascience": {"image": {"name": "dsml-platform/env-datascience", "tag": "1"}},
        "python-minimal": {"image": {"name": "dsml-platform/env-python-minimal", "tag": "1"}},
    }
}

CHECK = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import shutil
    work = Path(sys.argv[1])
    etc = Path("/usr/local/etc/jupyterhub")
    shutil.copytree(work / "etc-jupyterhub", etc, dirs_exist_ok=True)
    shutil.copytree(work / "etc-dsml", "/usr/local/etc/dsml", dirs_exist_ok=True)
    os.chdir(work / "srv")
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub
    import asyncio

    async def main():
        hub = JupyterHub(config_file=str(etc / "jupyterhub_config.py"))
        hub.load_config_file(hub.config_file)
        await hub.initialize([])
        services = {s["name"]: s for s in hub.services}
        roles = {r["name"]: r for r in hub.load_roles}
        print(json.dumps({
            "spawner": hub.spawner_class.__module__ + "." + hub.spawner_class.__name__,
            "services": {n: {k: s.get(k) for k in ("url", "command", "api_token")}
                         for n, s in services.items()},
            "roles": roles,
            "hub_connect_url": hub.hub_connect_url,
            "proxy_api": hub.proxy.api_url,
            "orm_services": sorted(s.name for s in hub.db.query(orm.Service)),
            "orm_roles": sorted(r.name for r in hub.db.query(orm.Role)),
            "profiles_callable": callable(hub.config.KubeSpawner.profile_list),
            "named": hub.allow_named_servers,
            "trusted_tokens": hub.trust_user_provided_tokens,
            "activity_interval": hub.last_activity_interval,
        }, default=str))

    asyncio.run(main())
    """
)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_hub_config_loads_on_z2jh(tmp_path: Path) -> None:
    etc = tmp_path / "etc-jupyterhub"
    etc.mkdir()
    for name in ("jupyterhub_config.py", "z2jh.py"):
        shutil.copy(Z2JH / "chart" / "files" / "hub" / name, etc / name)
    # the hub ConfigMap's names (release "dsml", fullnameOverride "": the short names)
    (etc / "config").mkdir()
    for short in ("hub", "proxy-api", "proxy-public", "user-scheduler", "singleuser"):
        (etc / "config" / short).write_text(short)
    secret = etc / "secret"
    secret.mkdir()
    values = hub_values()
    (secret / "values.yaml").write_text(yaml.safe_dump(values))
    for key in values["hub"]["services"]:
        (secret / f"hub.services.{key}.apiToken").write_text(f"token-{key}-" + "0" * 32)
    (secret / "hub.config.JupyterHub.cookie_secret").write_text("ab" * 32)
    (secret / "hub.config.CryptKeeper.keys").write_text("cd" * 32)
    shutil.copytree(ROOT / "hub_config" / "jupyterhub_config.d", etc / "jupyterhub_config.d")
    dsml = tmp_path / "etc-dsml"
    dsml.mkdir()
    (dsml / "settings.yaml").write_text(yaml.safe_dump({"data_dir": str(tmp_path / "srv/dsml")}))
    (dsml / "dsml-values.json").write_text(json.dumps(DSML_VALUES))
    (tmp_path / "srv").mkdir()
    (tmp_path / "check.py").write_text(CHECK)
    env = {
        **os.environ,
        "HUB_SERVICE_PORT": "8081",
        "PROXY_API_SERVICE_PORT": "8001",
        "POD_NAMESPACE": "dsml",
        # the hub Deployment sets it from the hub Secret
        "CONFIGPROXY_AUTH_TOKEN": "ef" * 32,
        "DSML_ROOT": str(ROOT),
    }
    env.pop("DSML_SETTINGS", None)
    script = (
        "mount -t tmpfs tmpfs /usr/local/etc && mkdir -p /usr/local/etc/jupyterhub && "
        f"exec {sys.executable} {tmp_path / 'check.py'} {tmp_path}"
    )
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not os.path.exists("/usr/local/etc/dsml")  # the machine is untouched
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["spawner"] == "kubespawner.spawner.KubeSpawner"
    assert report["proxy_api"] == "http://proxy-api:8001"
    assert report["hub_connect_url"].startswith("http://hub:8081")
    services = report["services"]
    # z2jh's culler, not ours; our services with z2jh's tokens and URLs through the hub Service
    assert "jupyterhub-idle-culler" in services and "idle-culler" not in services
    for name, port in (("scheduler", 8790), ("apps", 8791), ("portal", 8792)):
        assert services[name]["url"] == f"http://hub:{port}"
        assert services[name]["api_token"].startswith(f"token-{name}-")
        assert services[name]["command"][0] == "python3"
    assert {"dsml-admin", "usage-reader"} <= set(services)
    assert {"scheduler", "apps", "portal", "usage-reader", "dsml-admin"} <= set(
        report["orm_services"]
    )
    for role in ("lab-user", "platform-admin", "scheduler", "apps", "portal", "usage-reader"):
        assert role in report["roles"] and role in report["orm_roles"], role
    assert "jupyterhub-idle-culler" in report["roles"]
    assert report["profiles_callable"] and report["named"]
    # z2jh's service tokens are 64 random hex digits: one hash checks them, not 16384 rounds
    assert report["trusted_tokens"] is True
    # the culler judges by the hub's record of last use, read from the proxy every minute
    assert report["activity_interval"] == 60


def _jupyterhub_pin(text: str, pattern: str) -> str:
    match = re.search(pattern, text, re.MULTILINE)
    assert match, pattern
    return match.group(1)


def test_jupyterhub_pins_agree() -> None:
    spec = _jupyterhub_pin((ROOT / "pyproject.toml").read_text(), r'"jupyterhub([<>=,.0-9]+)"')
    assert spec == ">=5.5.1,<5.6"
    hub_in = (ROOT / "images" / "hub" / "requirements.in").read_text()
    assert _jupyterhub_pin(hub_in, r"^jupyterhub([<>=,.0-9]+)\s") == spec
    locked = {}
    for lock in sorted((ROOT / "images").glob("*/requirements.txt")):
        locked[lock.parent.name] = _jupyterhub_pin(lock.read_text(), r"^jupyterhub==([0-9.]+)")
        folder_in = (lock.parent / "requirements.in").read_text()
        assert _jupyterhub_pin(folder_in, r"^jupyterhub([<>=,.0-9]+)\s") == spec, lock.parent
    assert "hub" in locked and len(locked) >= 3
    assert len(set(locked.values())) == 1, locked
    from packaging.specifiers import SpecifierSet

    assert next(iter(locked.values())) in SpecifierSet(spec)


def test_hub_lock_installs_into_a_fresh_virtualenv() -> None:
    """The hub image's lock installs as a whole with --require-hashes, and its hub runs.

    Built once per lock (cached beside the test environments, like them); the image adds the
    platform package --no-deps on top, as here.
    """
    import hashlib

    from uv import find_uv_bin

    from conftest import ENV_CACHE

    uv = find_uv_bin()
    lock = ROOT / "images" / "hub" / "requirements.txt"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    prefix = ENV_CACHE.parent / "hub-image" / digest
    done = prefix / ".installed"
    python = prefix / "bin" / "python"
    if not done.exists():
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for cmd in (
            [uv, "venv", "--quiet", "--python", sys.executable, str(prefix)],
            [uv, "pip", "install", "--quiet", "--python", str(python), "--require-hashes",
             "--no-deps", "-r", str(lock)],
            [uv, "pip", "install", "--quiet", "--python", str(python), "--no-deps", str(ROOT)],
        ):  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, f"{cmd[:3]}: {result.stderr[-2000:]}"
        done.write_text(digest + "\n")
    check = subprocess.run(
        [str(python), "-c",
         "import jupyterhub, kubespawner, jupyterhub_idle_culler, psycopg, dsml.hub.kubernetes;"
         "print(jupyterhub.__version__)"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.strip().startswith("5.5.")
