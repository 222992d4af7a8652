"""What a built environment can import: top-level module names and the distributions behind them.

The answer comes from the environment's own Python (`importlib.metadata`), run once per built
version and cached as JSON inside the version folder, so `dsml check` and the kernel extension
never guess from package names. `write_catalog` gathers every built environment's inventory into
`<data dir>/share/jupyter/dsml-catalog.json`, the file the kernel extension reads to say which
curated environments do have a module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsml.datadir import DataDir
from dsml.environments.spec import Environment, images_dir, normalize_name
from dsml.environments.state import MARKER, status
from dsml.exceptions import EnvironmentBuildError, EnvironmentSpecError
from dsml.utils import write_atomic

INVENTORY_FILE = ".dsml-inventory.json"
"""Cache file inside `<environments dir>/<name>/<version>/`."""

CATALOG_FILE = "dsml-catalog.json"
"""Catalog file name inside `<data dir>/share/jupyter/`."""

FORMAT = 1
"""Version of the inventory and catalog JSON layout; a cache in another format is recomputed."""

ALIASES: dict[str, str] = {
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jwt": "pyjwt",
    "skimage": "scikit-image",
    "Crypto": "pycryptodome",
    "OpenSSL": "pyopenssl",
    "attr": "attrs",
    "magic": "python-magic",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "serial": "pyserial",
    "usb": "pyusb",
    "zmq": "pyzmq",
    "git": "gitpython",
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
    "sqlalchemy_utils": "sqlalchemy-utils",
    "fitz": "pymupdf",
    "Levenshtein": "levenshtein",
    "kafka": "kafka-python",
    "ldap": "python-ldap",
    "slugify": "python-slugify",
    "multipart": "python-multipart",
    "jose": "python-jose",
    "win32api": "pywin32",
    "umap": "umap-learn",
    "Bio": "biopython",
    "pkg_resources": "setuptools",
    "_distutils_hack": "setuptools",
}
"""Well-known import names whose distribution name differs (or cannot be guessed) when the
environment that has them is not built here. The inventory of a built environment wins."""

# Runs inside the environment's own Python: standard library only.
_PROBE = r"""
import importlib.metadata as md, json, pkgutil, re, site, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
dists = {}
for d in md.distributions():
    name = d.metadata["Name"]
    if name:
        dists.setdefault(norm(name), d.version)
modules = {}
for mod, names in md.packages_distributions().items():
    if mod.isidentifier():
        modules[mod] = sorted({norm(n) for n in names})
paths = [p for p in site.getsitepackages() + [site.getusersitepackages()] if p in sys.path]
for info in pkgutil.iter_modules(paths):
    if info.name.isidentifier():
        modules.setdefault(info.name, [])
print(json.dumps({
    "python": "%d.%d.%d" % sys.version_info[:3],
    "stdlib": sorted(sys.stdlib_module_names),
    "modules": dict(sorted(modules.items())),
    "distributions": dict(sorted(dists.items())),
}))
"""


@dataclass(frozen=True)
class Inventory:
    """Importable top-level modules of one environment and the distributions that provide them."""

    python: str
    stdlib: frozenset[str]
    modules: dict[str, list[str]] = field(default_factory=dict)
    distributions: dict[str, str] = field(default_factory=dict)

    def distributions_of(self, module: str) -> list[str]:
        """Normalized distribution names that provide `module` (empty if none is recorded)."""
        return self.modules.get(module, [])

    def to_json(self) -> dict[str, Any]:
        """The JSON form cached in the version folder."""
        return {
            "format": FORMAT,
            "python": self.python,
            "stdlib": sorted(self.stdlib),
            "modules": self.modules,
            "distributions": self.distributions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        """Read the cached JSON form."""
        return cls(
            python=str(data["python"]),
            stdlib=frozenset(data["stdlib"]),
            modules={str(k): list(v) for k, v in data["modules"].items()},
            distributions={str(k): str(v) for k, v in data["distributions"].items()},
        )


def stdlib_modules() -> frozenset[str]:
    """Top-level module names of the standard library of the Python running this code."""
    return frozenset(sys.stdlib_module_names)


def guess_distribution(module: str) -> str:
    """The distribution name to ask for when no environment knows `module`."""
    return ALIASES.get(module) or normalize_name(module)


def compute_inventory(prefix: Path) -> Inventory:
    """Ask the Python in the virtualenv `prefix` what it can import (takes about half a second)."""
    python = prefix / "bin" / "python"
    try:
        result = subprocess.run(
            [str(python), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentBuildError(f"cannot list the modules of {prefix}: {e}") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentBuildError(
            f"listing the modules of {prefix} failed with exit code {result.returncode}: {last}"
        )
    return Inventory.from_json(json.loads(result.stdout))


def inventory(prefix: Path) -> Inventory:
    """The inventory of the built environment in `prefix`, computed once and cached there.

    The cache is recomputed when it is older than the build marker (a forced rebuild).
    """
    cache = prefix / INVENTORY_FILE
    marker = prefix / MARKER
    try:
        if cache.stat().st_mtime >= marker.stat().st_mtime:
            data = json.loads(cache.read_text())
            if data.get("format") == FORMAT:
                return Inventory.from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no cache yet, or a broken one: compute it again
    found = compute_inventory(prefix)
    try:
        write_atomic(cache, json.dumps(found.to_json(), indent=1) + "\n")
    except OSError:
        pass  # a read-only environments dir still gets the right answer, only slower
    return found


def lock_inventory(env: Environment, known: dict[str, list[str]] | None = None) -> Inventory:
    """An approximate inventory from the lock alone, for an environment not built here.

    A module is taken to come from the locked distribution of the same normalized name, from
    `known` (module → distributions seen in built environments) or from the alias table.
    """
    modules: dict[str, list[str]] = {}
    by_dist: dict[str, list[str]] = {}
    for module, dists in (known or {}).items():
        for dist in dists:
            by_dist.setdefault(dist, []).append(module)
    for module, dist in ALIASES.items():
        by_dist.setdefault(normalize_name(dist), []).append(module)
    for dist in env.packages:
        modules.setdefault(dist.replace("-", "_"), []).append(dist)
        for module in by_dist.get(dist, []):
            if dist not in modules.setdefault(module, []):
                modules[module].append(dist)
    return Inventory(
        python=".".join(str(n) for n in sys.version_info[:3]),
        stdlib=stdlib_modules(),
        modules=modules,
        distributions=dict(env.packages),
    )


def _declared_environments() -> list[Environment]:
    """Every readable environment under images/ (a broken folder is left out, not fatal)."""
    found = []
    for path in sorted(images_dir().iterdir()):
        if (path / "environment.yaml").exists():
            try:
                found.append(Environment.from_folder(path))
            except EnvironmentSpecError:
                continue
    return found


def catalog_path(datadir: DataDir) -> Path:
    """The catalog of built environments: `<data dir>/share/jupyter/dsml-catalog.json`."""
    return datadir.jupyter_data / CATALOG_FILE


def write_catalog(datadir: DataDir, environments: list[Environment] | None = None) -> Path:
    """Write the catalog of every built environment (name, display name, version, modules).

    Environments whose current lock is not built in this data dir are left out. Returns the path.
    """
    entries = []
    for env in environments if environments is not None else _declared_environments():
        state = status(env, datadir)
        if state.state != "built":
            continue
        try:
            found = inventory(state.prefix)
        except EnvironmentBuildError:
            continue  # a broken virtualenv must not stop the others' kernels from getting help
        entries.append(
            {
                "name": env.name,
                "display_name": env.display_name,
                "version": env.version,
                "kernel": env.kernel_name,
                "python": found.python,
                "modules": found.modules,
                "distributions": found.distributions,
            }
        )
    catalog = {
        "format": FORMAT,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "aliases": {module: normalize_name(dist) for module, dist in sorted(ALIASES.items())},
        "environments": entries,
    }
    path = catalog_path(datadir)
    write_atomic(path, json.dumps(catalog, indent=1) + "\n")
    return path
