"""Reading an environment folder under images/: metadata, hand-edited input, and the lock.

An environment folder holds `environment.yaml` (name, display name, description, image),
`requirements.in` (what people ask for, a reason per line), `requirements.txt` (the lock,
machine-made with hashes), a Dockerfile and a README. The lock's sha256 names the version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dsml import kernels
from dsml.exceptions import EnvironmentSpecError
from dsml.settings import platform_root

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
_METADATA_KEYS = {"name", "display_name", "description", "image"}


def normalize_name(name: str) -> str:
    """Return a package name in PEP 503 normal form (lower case, runs of -_. become -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, str]:
    """Return {normalized package name: version} for every `name==version` line of a lock."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[normalize_name(match.group(1))] = match.group(3)
    return pins


@dataclass(frozen=True)
class Environment:
    """One curated environment as declared in images/<name>/."""

    name: str
    path: Path
    display_name: str
    description: str
    image: str
    lock_sha256: str
    packages: dict[str, str] = field(default_factory=dict)

    @property
    def lock_path(self) -> Path:
        """The machine-made lock file (pinned, with hashes)."""
        return self.path / "requirements.txt"

    @property
    def version(self) -> str:
        """Short version id: the first 12 hex digits of the lock's sha256."""
        return self.lock_sha256[:12]

    @property
    def kernel_name(self) -> str:
        """Name of the kernelspec that runs code in this environment."""
        return kernels.kernel_name(self.name)

    @property
    def image_tag(self) -> str:
        """Image reference for Kubernetes: repository and the lock version as tag."""
        return f"{self.image}:{self.version}"

    @classmethod
    def from_folder(cls, path: Path) -> Environment:
        """Read an environment folder, raising EnvironmentSpecError on anything missing."""
        meta_path = path / "environment.yaml"
        try:
            meta = yaml.safe_load(meta_path.read_text())
        except FileNotFoundError:
            raise EnvironmentSpecError(f"{meta_path} is missing") from None
        except yaml.YAMLError as e:
            raise EnvironmentSpecError(f"{meta_path} is not valid YAML: {e}") from None
        if not isinstance(meta, dict):
            raise EnvironmentSpecError(
                f"{meta_path}: expected a mapping with keys {_METADATA_KEYS}"
            )
        missing = _METADATA_KEYS - set(meta)
        unknown = set(meta) - _METADATA_KEYS
        if missing or unknown:
            raise EnvironmentSpecError(
                f"{meta_path}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}; "
                f"allowed: {sorted(_METADATA_KEYS)}"
            )
        if meta["name"] != path.name:
            raise EnvironmentSpecError(
                f"{meta_path}: name {meta['name']!r} must equal the folder name {path.name!r}"
            )
        lock = path / "requirements.txt"
        try:
            data = lock.read_bytes()
        except FileNotFoundError:
            raise EnvironmentSpecError(
                f"{lock} is missing; make it from requirements.in (see {path / 'README.md'})"
            ) from None
        return cls(
            name=meta["name"],
            path=path,
            display_name=str(meta["display_name"]),
            description=str(meta["description"]),
            image=str(meta["image"]),
            lock_sha256=hashlib.sha256(data).hexdigest(),
            packages=parse_lock(data.decode()),
        )


def images_dir() -> Path:
    """The folder holding one subfolder per curated environment."""
    return platform_root() / "images"


def list_environments(root: Path | None = None) -> list[Environment]:
    """Every environment declared under images/, sorted by name."""
    base = root or images_dir()
    return [
        Environment.from_folder(p)
        for p in sorted(base.iterdir())
        if p.is_dir() and (p / "environment.yaml").exists()
    ]


def find_environment(name: str, root: Path | None = None) -> Environment:
    """The environment called `name`, or EnvironmentSpecError listing the ones there are."""
    base = root or images_dir()
    path = base / name
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) or not (path / "environment.yaml").exists():
        known = ", ".join(e.name for e in list_environments(base)) or "none"
        raise EnvironmentSpecError(f"unknown environment {name!r}; known environments: {known}")
    return Environment.from_folder(path)


def diff_pins(old: dict[str, str], new: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """What changed between two locks: added, removed, upgraded and downgraded packages."""
    from packaging.version import InvalidVersion, Version

    changes: dict[str, list[dict[str, str]]] = {
        "added": [],
        "removed": [],
        "upgraded": [],
        "downgraded": [],
    }
    for name in sorted(set(old) | set(new)):
        if name not in old:
            changes["added"].append({"name": name, "version": new[name]})
        elif name not in new:
            changes["removed"].append({"name": name, "version": old[name]})
        elif old[name] != new[name]:
            try:
                up = Version(new[name]) > Version(old[name])
            except InvalidVersion:
                up = new[name] > old[name]
            changes["upgraded" if up else "downgraded"].append(
                {"name": name, "from": old[name], "to": new[name]}
            )
    return changes
