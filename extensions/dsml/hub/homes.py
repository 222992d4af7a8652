"""User home folders: each user gets their own copy of training/ and shared_notebooks/.

Copies are tracked in `<home>/.dsml/seeded.json` (path -> sha256 of what was copied), so that
a platform update adds new notebooks and refreshes ones the user never touched, while files the
user changed or deleted are left as the user left them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from dsml.utils import write_atomic

MANIFEST = Path(".dsml") / "seeded.json"
_SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(source: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith((".pyc",)):
                yield Path(dirpath) / name


def seed_home(home: Path, sources: Iterable[Path]) -> dict[str, list[str]]:
    """Copy each source folder into `home/<folder name>/` without overwriting user changes.

    Returns {"added": [...], "updated": [...], "kept": [...]} of paths relative to home.
    """
    home.mkdir(parents=True, exist_ok=True)
    manifest_path = home / MANIFEST
    try:
        seeded: dict[str, str] = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        seeded = {}
    report: dict[str, list[str]] = {"added": [], "updated": [], "kept": []}
    for source in sources:
        source = Path(source)
        if not source.is_dir():
            continue
        for src in _files(source):
            rel = str(Path(source.name) / src.relative_to(source))
            dest = home / rel
            upstream = _sha256(src)
            if rel not in seeded:
                if dest.exists():
                    report["kept"].append(rel)
                else:
                    report["added"].append(rel)
                    _copy(src, dest)
                seeded[rel] = upstream
            elif seeded[rel] != upstream:
                # refresh only what the user left exactly as we copied it
                if dest.exists() and _sha256(dest) == seeded[rel]:
                    _copy(src, dest)
                    report["updated"].append(rel)
                    seeded[rel] = upstream
                else:
                    report["kept"].append(rel)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(manifest_path, json.dumps(seeded, indent=1, sort_keys=True))
    return report


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.dsml-tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def main(argv: list[str] | None = None) -> int:
    """`python -m dsml.hub.homes HOME SOURCE...`: seed HOME, print the report as JSON.

    The spawner runs this as the user's account, so the copies are theirs and a link the user
    placed in their home cannot make the platform write elsewhere.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m dsml.hub.homes HOME [SOURCE...]", file=sys.stderr)
        return 2
    report = seed_home(Path(args[0]), [Path(a) for a in args[1:]])
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
