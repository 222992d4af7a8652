"""Kernel names of the curated environments: the one rule every process follows.

`dsml-NAME` is the kernel of environment NAME's current version; `dsml-NAME--VERSION` the
kernel of one built version (jobs pinned to an older lock run on it). Nothing else builds or
parses these names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PREFIX = "dsml-"
"""Every curated kernel's name starts with this."""

VERSION_SEPARATOR = "--"
"""Between the environment and the version in a pinned kernel's name."""


def kernel_name(environment: str, version: str | None = None) -> str:
    """The kernel of an environment: its current version, or the pinned `version`."""
    base = f"{PREFIX}{environment}"
    return f"{base}{VERSION_SEPARATOR}{version}" if version else base


def is_curated(name: object) -> bool:
    """Whether `name` is the kernel of a curated environment (current or pinned)."""
    return isinstance(name, str) and name.startswith(PREFIX) and len(name) > len(PREFIX)


def is_pinned(name: str) -> bool:
    """Whether `name` names one built version rather than the current one."""
    return is_curated(name) and VERSION_SEPARATOR in name[len(PREFIX) :]


def environment_of(name: object) -> str | None:
    """`dsml-NAME` or `dsml-NAME--VERSION` -> NAME; any other kernel -> None."""
    if not is_curated(name):
        return None
    return str(name)[len(PREFIX) :].split(VERSION_SEPARATOR, 1)[0] or None


def notebook_environment(nb: dict[str, Any]) -> str | None:
    """The curated environment a notebook's kernelspec names, if any."""
    metadata = nb.get("metadata") if isinstance(nb, dict) else None
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    return environment_of(spec.get("name") if isinstance(spec, dict) else None)


def kernel_metadata(name: str, jupyter_path: str | None = None) -> dict[str, Any] | None:
    """The `dsml` metadata of a kernelspec on JUPYTER_PATH, or None when it is not there."""
    path_list = jupyter_path if jupyter_path is not None else os.environ.get("JUPYTER_PATH", "")
    for base in path_list.split(os.pathsep):
        path = Path(base) / "kernels" / name / "kernel.json"
        if base and path.exists():
            return json.loads(path.read_text()).get("metadata", {}).get("dsml", {})
    return None
