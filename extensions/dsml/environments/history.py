"""An environment's history: the lock before the current one, and what changed since."""

from __future__ import annotations

import json
import subprocess

from dsml.datadir import DataDir
from dsml.environments import build as env_build
from dsml.environments.spec import Environment, diff_pins, parse_lock
from dsml.settings import platform_root


def previous_lock(env: Environment, datadir: DataDir) -> tuple[str, dict[str, str]] | None:
    """(where from, pins) of the lock before the current one, or None.

    The newest other version built in this data dir, else the last different version of the
    lock file in git history.
    """
    base = datadir.environments / env.name
    built = []
    if base.is_dir():
        for folder in base.iterdir():
            marker, lock = folder / env_build.MARKER, folder / env_build.LOCK_COPY
            if folder.name != env.version and marker.exists() and lock.exists():
                built.append((json.loads(marker.read_text()).get("built_at", ""), folder, lock))
    if built:
        _, folder, lock = max(built)
        return f"built version {folder.name}", parse_lock(lock.read_text())
    try:
        rel = env.lock_path.relative_to(platform_root())
        commits = subprocess.run(
            ["git", "-C", str(platform_root()), "log", "--format=%H", "-n", "50", "--", str(rel)],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.split()
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    current = env.lock_path.read_bytes()
    for commit in commits:
        shown = subprocess.run(
            ["git", "-C", str(platform_root()), "show", f"{commit}:{rel}"],
            capture_output=True,
            timeout=10,
        )
        if shown.returncode == 0 and shown.stdout != current:
            return f"git {commit[:10]}", parse_lock(shown.stdout.decode())
    return None


def describe(env: Environment, datadir: DataDir) -> dict:
    """The catalog record of an environment: pins, versions, build state, changes."""
    state = env_build.status(env, datadir)
    previous = previous_lock(env, datadir)
    return {
        "name": env.name,
        "display_name": env.display_name,
        "description": env.description,
        "version": env.version,
        "lock_sha256": env.lock_sha256,
        "image": env.image_tag,
        "kernel": env.kernel_name,
        "status": state.state,
        "built_versions": list(state.built_versions),
        "packages": env.packages,
        "previous": previous[0] if previous else None,
        "changes": diff_pins(previous[1], env.packages) if previous else None,
    }
