"""Turn an environment's lock into a virtualenv plus a kernelspec, once per lock version.

Each version lives in `<environments dir>/<name>/<version>/` (version = the lock's hash prefix),
so a rebuild from a new lock never disturbs runs still using the old one. The kernelspec
`dsml-<name>` under `<data dir>/share/jupyter/kernels/` points at the newest built version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from dsml import kernels
from dsml.datadir import DataDir
from dsml.environments.inventory import catalog_path, write_catalog
from dsml.environments.spec import Environment
from dsml.environments.state import (  # noqa: F401 - re-exported: build.status is the API
    LOCK_COPY,
    MARKER,
    EnvironmentStatus,
    prefix_for,
    status,
)
from dsml.exceptions import EnvironmentBuildError
from dsml.system_accounts import open_to_all, shared_interpreter
from dsml.utils import write_atomic


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock so two builds of one environment never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


def _run(cmd: list[str], step: str, quiet: bool) -> None:
    result = subprocess.run(
        cmd,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
    )
    if result.returncode != 0:
        tail = (result.stdout or "").strip().splitlines()[-5:] if quiet else []
        detail = ("; " + " | ".join(tail)) if tail else ""
        raise EnvironmentBuildError(f"{step} failed with exit code {result.returncode}{detail}")


def write_kernelspec(
    env: Environment, prefix: Path, datadir: DataDir, name: str | None = None
) -> Path:
    """Register `dsml-<name>` (or `name`) so every user server sees a kernel running in `prefix`."""
    # the kernel loads the dsml_kernel IPython extension (missing-module help, %pip warning)
    # from kernel_ext/; extra_extensions adds to, never replaces, extensions users configure

    folder = datadir.kernels / (name or env.kernel_name)
    folder.mkdir(parents=True, exist_ok=True)
    # every user's server reads the kernelspecs, whatever umask the platform runs with
    for path in (datadir.jupyter_data.parent, datadir.jupyter_data, datadir.kernels, folder):
        os.chmod(path, 0o755)
    spec = {
        "argv": [
            str(prefix / "bin" / "python"),
            "-Xfrozen_modules=off",
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.extra_extensions=dsml_kernel",
        ],
        "display_name": env.display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "env": {
            "DSML_ENVIRONMENT": env.name,
            "DSML_ENVIRONMENT_VERSION": env.version,
            "DSML_CATALOG": str(catalog_path(datadir)),
            "PYTHONPATH": str(Path(__file__).resolve().parent / "kernel_ext"),
        },
        "metadata": {
            "dsml": {
                "environment": env.name,
                "version": env.version,
                "lock_sha256": env.lock_sha256,
                "description": env.description,
                "image": env.image_tag,
            },
            "debugger": True,
        },
    }
    write_atomic(folder / "kernel.json", json.dumps(spec, indent=2) + "\n")
    write_catalog(datadir)  # here, not in build(): a build found done returns early
    return folder


def register(env: Environment, prefix: Path, datadir: DataDir) -> None:
    """Point `dsml-<name>` at this version and keep `dsml-<name>--<version>` for pinned jobs."""
    write_kernelspec(env, prefix, datadir)
    write_kernelspec(env, prefix, datadir, name=kernels.kernel_name(env.name, env.version))


def build(
    env: Environment,
    datadir: DataDir,
    *,
    force: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Build the environment's current lock into a virtualenv (if needed) and register it.

    Returns the virtualenv folder. Raises EnvironmentBuildError when an install step fails;
    a failed build leaves no marker, so the next call starts it again.
    """
    prefix = prefix_for(env, datadir)
    with _locked(datadir.environments / env.name / ".build.lock"):
        if (prefix / MARKER).exists() and not force:
            register(env, prefix, datadir)
            return prefix
        started = time.monotonic()
        if prefix.exists():
            shutil.rmtree(prefix)
        log(f"[1/3] {env.name} {env.version}: creating virtualenv in {prefix}")
        # an interpreter every account can run: user accounts start the kernels
        python = shared_interpreter(getattr(sys, "_base_executable", None) or sys.executable)
        _run([_uv(), "venv", "--seed", "--quiet", "--python", python, str(prefix)], "venv", quiet)
        log(f"[2/3] {env.name} {env.version}: installing {len(env.packages)} pinned packages")
        _run(
            [
                _uv(),
                "pip",
                "install",
                "--python",
                str(prefix / "bin" / "python"),
                "--require-hashes",
                "--no-deps",
                "-r",
                str(env.lock_path),
            ]
            + (["--quiet"] if quiet else []),
            "installing the lock",
            quiet,
        )
        log(f"[3/3] {env.name} {env.version}: checking the kernel starts its imports")
        _run(
            [str(prefix / "bin" / "python"), "-c", "import ipykernel, ipywidgets"],
            "import check",
            quiet,
        )
        # keep the lock with the version: `dsml env show` diffs a new lock against it
        shutil.copyfile(env.lock_path, prefix / LOCK_COPY)
        marker = {
            "name": env.name,
            "version": env.version,
            "lock_sha256": env.lock_sha256,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.monotonic() - started, 1),
        }
        (prefix / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        # readable and runnable by every account, writable by none of them
        open_to_all(prefix)
        for folder in (datadir.environments, prefix.parent):
            os.chmod(folder, 0o755)
        register(env, prefix, datadir)
        log(f"built {env.name} {env.version} in {marker['seconds']} s")
        return prefix
