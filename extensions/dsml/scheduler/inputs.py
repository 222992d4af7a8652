"""A job's input folder: files laid beside its notebook when it runs, snapshotted per version.

The files come in the API request (`input_files: [{"path", "content_base64"}]`, read by the
user's own server or the CLI, never by the service from a path) and are kept on disk under
`<root>/<job id>/<version>/files/`, with `manifest.json` listing path, size and sha256.
A new notebook without new files carries the previous version's files over.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from dsml.scheduler.exceptions import BadRequest, TooLarge
from dsml.utils import write_atomic

MANIFEST = "manifest.json"


def check_path(path: Any) -> str:
    """A relative POSIX path below the notebook's folder, or BadRequest naming the rule."""
    rule = (
        "input file paths are relative POSIX paths without '..', without a leading '/', "
        "without NUL and without segments starting with '.'"
    )
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path:
        raise BadRequest(f"{rule}; got {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(p in ("", "..") or p.startswith(".") for p in pure.parts):
        raise BadRequest(f"{rule}; got {path!r}")
    if len(path) > 1024:
        raise BadRequest(f"input file paths are at most 1024 characters; got {len(path)}")
    return str(pure)


class Inputs(LoggingConfigurable):
    """Input folders of job versions on disk."""

    root = Unicode(config=True, help="Folder holding one folder of input files per job version.")
    max_input_files = Integer(
        500, config=True, help="Files a job's input folder may hold (a count)."
    )
    max_input_bytes = Integer(
        20 * 1024 * 1024, config=True, help="Bytes a job's input folder may hold in all."
    )

    def decode(self, items: Any) -> list[tuple[str, bytes]]:
        """Check `input_files` of a request: (path, content) pairs, within the limits."""
        if not isinstance(items, list):
            raise BadRequest(
                'input_files must be a list of {"path": ..., "content_base64": ...} objects'
            )
        if len(items) > self.max_input_files:
            raise TooLarge(
                f"input_files holds {len(items)} files; the limit (max_input_files) is "
                f"{self.max_input_files}"
            )
        files: dict[str, bytes] = {}
        total = 0
        for item in items:
            if not isinstance(item, dict) or set(item) != {"path", "content_base64"}:
                raise BadRequest(
                    'each of input_files must be {"path": ..., "content_base64": ...}, '
                    f"got {str(item)[:80]!r}"
                )
            path = check_path(item["path"])
            if path in files:
                raise BadRequest(f"input file {path} is listed twice")
            try:
                data = base64.b64decode(str(item["content_base64"]), validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"input file {path}: content_base64 is not base64") from None
            total += len(data)
            if total > self.max_input_bytes:
                raise TooLarge(
                    f"input_files hold more than {self.max_input_bytes:,} bytes; the limit "
                    "(max_input_bytes) is that: leave large data out of the notebook's folder"
                )
            files[path] = data
        return sorted(files.items())

    def folder(self, job_id: int, version: int) -> Path:
        """Where a job version's input folder is kept."""
        return Path(self.root) / str(int(job_id)) / str(int(version))

    @staticmethod
    def manifest_of(files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
        """path, size and sha256 of each file."""
        return [
            {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files
        ]

    def stage(self, files: list[tuple[str, bytes]]) -> Path:
        """Write the files to a staging folder (moved into place by `commit`)."""
        staging = Path(self.root) / f".staging-{uuid.uuid4().hex}"
        for path, data in files:
            write_atomic(staging / "files" / path, data, mode=0o600)
        write_atomic(staging / MANIFEST, json.dumps(self.manifest_of(files)), mode=0o600)
        return staging

    def commit(self, staging: Path, job_id: int, version: int) -> None:
        """Make a staged folder the input folder of a job version."""
        target = self.folder(job_id, version)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    def discard(self, staging: Path | None) -> None:
        """Drop a staged folder whose job version was not made."""
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    def carry(self, job_id: int, source: int, target: int) -> None:
        """A new version without new files keeps the files of version `source`."""
        old = self.folder(job_id, source)
        if old.exists():
            shutil.copytree(old, self.folder(job_id, target), dirs_exist_ok=True)

    def manifest(self, job_id: int, version: int) -> list[dict[str, Any]]:
        """path, size and sha256 of a version's input files ([] without any)."""
        try:
            return json.loads((self.folder(job_id, version) / MANIFEST).read_text())
        except (OSError, ValueError):
            return []

    def load(self, job_id: int, version: int) -> list[dict[str, str]]:
        """A version's input files as the worker gets them: path and content_base64."""
        files = self.folder(job_id, version) / "files"
        return [
            {
                "path": item["path"],
                "content_base64": base64.b64encode((files / item["path"]).read_bytes()).decode(),
            }
            for item in self.manifest(job_id, version)
        ]

    def remove_job(self, job_id: int) -> None:
        """Delete every input folder of a job."""
        shutil.rmtree(Path(self.root) / str(int(job_id)), ignore_errors=True)
