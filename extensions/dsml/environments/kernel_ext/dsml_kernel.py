"""IPython extension loaded by every curated kernel: say what the platform's constraints mean.

It runs inside the environment's own Python, which does not have the dsml package, so it uses
the standard library only. It does two things:

* a missing module (`ModuleNotFoundError`) is explained: which curated environment the kernel
  runs, which curated environments do have the module (from the catalog the platform writes at
  `DSML_CATALOG`), and how to ask for it; the short original error line is kept;
* `%pip install` / `!pip install` (and conda) cells get a warning that the install is lost when
  the kernel restarts and is not seen by scheduled jobs or apps; they still run.

The kernelspec sets DSML_ENVIRONMENT, DSML_ENVIRONMENT_VERSION and DSML_CATALOG.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

INSTALL_WARNING = (
    "dsml: installing packages into the curated environment {env} only lasts until this kernel "
    "restarts, and scheduled jobs and apps do not see it. To keep a package, ask for it: "
    "dsml env request PACKAGE --env {name} (or ask the platform team)."
)
"""Printed (on stderr) before a cell that installs packages runs."""

_INSTALL = re.compile(
    r"^[ \t]*(?:[\w.,\[\] \t]+=[ \t]*)?(?:%{1,2}|!{1,2})?[ \t]*(?:sudo[ \t]+)?"
    r"(?:(?:[\w./~-]*/)?pip[\d.]*"
    r"|(?:(?:[\w./~-]*/)?python[\d.]*|\{sys\.executable\}|\$sys\.executable)[ \t]+-m[ \t]+pip"
    r"|uv[ \t]+pip|conda|mamba|micromamba)[ \t]+install\b",
    re.MULTILINE,
)


def _environment() -> tuple[str, str]:
    return (
        os.environ.get("DSML_ENVIRONMENT", "unknown"),
        os.environ.get("DSML_ENVIRONMENT_VERSION", "unknown"),
    )


def load_catalog(path: str | None = None) -> dict[str, Any]:
    """The platform's catalog of curated environments, or an empty one if it cannot be read."""
    path = path or os.environ.get("DSML_CATALOG", "")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        return {"environments": [], "aliases": {}, "unavailable": True}
    return data


def _display(entry: dict[str, Any]) -> str:
    return f"{entry.get('display_name') or entry.get('name')} ({entry.get('version', '?')})"


def missing_module_message(module: str, catalog: dict[str, Any] | None = None) -> list[str]:
    """The lines that explain a missing top-level `module` in this curated environment."""
    catalog = catalog if catalog is not None else load_catalog()
    name, version = _environment()
    entries = [e for e in catalog.get("environments", []) if isinstance(e, dict)]
    this = next((e for e in entries if e.get("name") == name), {"name": name, "version": version})
    here = _display({**this, "version": version})
    having = []
    distribution = ""
    for entry in entries:
        dists = (entry.get("modules") or {}).get(module)
        if dists is None or entry.get("name") == name:
            continue
        pinned = ""
        if dists:
            distribution = distribution or dists[0]
            pinned = f"{dists[0]} {(entry.get('distributions') or {}).get(dists[0], '')}".strip()
        having.append(_display(entry) + (f" as {pinned}" if pinned else ""))
    if not distribution:
        aliases = catalog.get("aliases") or {}
        distribution = aliases.get(module) or re.sub(r"[-_.]+", "-", module).lower()
    lines = [f"No module named '{module}' in the curated environment {here}."]
    if having:
        lines.append("It is in: " + "; ".join(having) + ". Switch the kernel to use it.")
    elif catalog.get("unavailable"):
        lines.append("The list of curated environments cannot be read here to say which have it.")
    else:
        lines.append("No curated environment has it.")
    lines.append(
        f"To ask for it: dsml env request {distribution} --env {name} (or ask the platform team)."
    )
    return lines


def installs_packages(cell: str) -> bool:
    """True if a cell runs `pip install` (as %pip, !pip, python -m pip, uv pip) or conda."""
    return _INSTALL.search(cell) is not None


def _user_code_raised(shell: Any, tb: Any) -> bool:
    """True if the import failed in a notebook cell itself (not deep inside a library)."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    filename = tb.tb_frame.f_code.co_filename
    cells = getattr(getattr(shell, "compile", None), "_filename_map", {}) or {}
    return filename in cells or filename.startswith("<")


def _on_module_not_found(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset=None):
    """Custom exception handler: explain the missing module, keep the original error line."""
    module = (getattr(value, "name", None) or "").split(".")[0]
    if not module or module in sys.modules or _importable(module):
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    else:
        hint = missing_module_message(module)
        if _user_code_raised(shell, tb):
            stb = hint + ["", f"{etype.__name__}: {value}"]
        else:  # a library's own import failed: keep its traceback to show where
            stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
            stb = stb + [""] + hint
    shell._showtraceback(etype, value, stb)
    return stb


def _importable(module: str) -> bool:
    """True if the top-level `module` exists (so a submodule is what is missing)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _warn_on_install(info: Any) -> None:
    """pre_run_cell hook: warn before a cell that installs packages runs."""
    cell = getattr(info, "raw_cell", "") or ""
    if installs_packages(cell):
        name, version = _environment()
        entry = next(
            (e for e in load_catalog().get("environments", []) if e.get("name") == name), {}
        )
        env = _display({**entry, "name": name, "version": version})
        print(INSTALL_WARNING.format(env=env, name=name), file=sys.stderr, flush=True)


def private_install_target() -> str:
    """Send this kernel's pip installs to a folder of its own, first on sys.path.

    The curated environment's virtualenv is shared by every user, job and app on the machine: an
    install must never change it. PIP_TARGET reaches `%pip` and `!pip` alike (they run pip in a
    subprocess that inherits this environment); the folder is gone with the kernel.
    """
    import atexit
    import shutil
    import tempfile

    target = tempfile.mkdtemp(prefix="dsml-pip-")
    os.environ["PIP_TARGET"] = target
    os.environ.pop("PIP_USER", None)
    sys.path.insert(0, target)
    atexit.register(shutil.rmtree, target, True)
    return target


def load_ipython_extension(ip: Any) -> None:
    """Install the missing-module explanation and the install warning in this kernel."""
    private_install_target()
    ip.set_custom_exc((ModuleNotFoundError,), _on_module_not_found)
    ip.events.register("pre_run_cell", _warn_on_install)


def unload_ipython_extension(ip: Any) -> None:
    """Undo load_ipython_extension."""
    ip.set_custom_exc((), None)
    try:
        ip.events.unregister("pre_run_cell", _warn_on_install)
    except ValueError:
        pass
