"""Where an environment stands in a data dir: which lock versions are built, and where.

Read by the builder (build.py) and by the inventory (inventory.py), so neither imports the other
for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsml.datadir import DataDir
from dsml.environments.spec import Environment

LOCK_COPY = ".dsml-lock.txt"
"""The lock a version was built from, kept in its folder."""

MARKER = ".dsml-build.json"
"""File written last into a built environment; its absence means the build did not finish."""


@dataclass(frozen=True)
class EnvironmentStatus:
    """Where an environment stands in one data dir."""

    state: str  # "built", "outdated" (an older lock is built), or "missing"
    prefix: Path
    built_versions: tuple[str, ...]


def prefix_for(env: Environment, datadir: DataDir) -> Path:
    """The virtualenv folder of the environment's current lock version."""
    return datadir.environments / env.name / env.version


def _built_versions(env: Environment, datadir: DataDir) -> list[str]:
    base = datadir.environments / env.name
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / MARKER).exists())


def status(env: Environment, datadir: DataDir) -> EnvironmentStatus:
    """Report whether the environment's current lock is built in this data dir."""
    versions = tuple(_built_versions(env, datadir))
    prefix = prefix_for(env, datadir)
    if env.version in versions:
        state = "built"
    elif versions:
        state = "outdated"
    else:
        state = "missing"
    return EnvironmentStatus(state=state, prefix=prefix, built_versions=versions)
