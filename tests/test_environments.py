"""Curated environments: a build from the lock yields exactly the pinned versions."""

from __future__ import annotations

import json
import subprocess

import pytest

from dsml.datadir import DataDir
from dsml.environments import build as env_build
from dsml.environments import find_environment, list_environments
from dsml.environments.spec import normalize_name, parse_lock

from conftest import DSML, ENVIRONMENTS, free_port, write_settings


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_pip_freeze_equals_the_lock(env_datadir: DataDir, name: str) -> None:
    env = find_environment(name)
    prefix = env_build.prefix_for(env, env_datadir)
    frozen = subprocess.run(
        [str(prefix / "bin" / "python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        name: version
        for name, version in parse_lock(frozen).items()
        if name not in {"pip", "setuptools", "wheel"}
    }
    assert installed == env.packages
    assert installed, "the lock pins no packages"


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_environment_pins_jupyterhub_5_5(name: str) -> None:
    env = find_environment(name)
    assert env.packages["jupyterhub"].startswith("5.5.")
    lock = env.lock_path.read_text()
    assert "--hash=sha256:" in lock
    for line in (env.path / "requirements.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "#" in line, f"{name}/requirements.in line without a reason: {line}"
    assert normalize_name("ipykernel") in env.packages


def test_kernelspec_names_the_environment(env_datadir: DataDir) -> None:
    for name in ENVIRONMENTS:
        env = find_environment(name)
        spec = json.loads((env_datadir.kernels / env.kernel_name / "kernel.json").read_text())
        assert spec["display_name"] == env.display_name
        assert spec["metadata"]["dsml"]["version"] == env.version
        assert spec["argv"][0] == str(env_build.prefix_for(env, env_datadir) / "bin" / "python")


def test_env_list_shows_status_and_lock_hash(env_datadir: DataDir, tmp_path) -> None:
    settings = write_settings(tmp_path / "s.yaml", env_datadir.root, free_port())
    out = subprocess.run(
        DSML + ["env", "list", "--json", "--settings", str(settings)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {e.name for e in list_environments()}
    for env in list_environments():
        assert rows[env.name]["lock_sha256"] == env.lock_sha256
        assert rows[env.name]["description"] == env.description
        expected = "built" if env.name in ENVIRONMENTS else "missing"
        assert rows[env.name]["status"] == expected


def test_unknown_environment_is_one_line_error(tmp_path) -> None:
    result = subprocess.run(
        DSML + ["env", "build", "no-such-env", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown environment 'no-such-env'; known environments: datascience" in result.stderr
