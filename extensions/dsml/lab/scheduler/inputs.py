"""A job's input folder ("Run job with input folder"), read by the user's own server.

The notebook's folder is read here, in the user's JupyterLab server, which runs as the user:
the scheduler service never reads a path of a user's, it gets the files in the job's body as
`"input_files": [{"path": "data/sales.csv", "content_base64": "..."}]` and lays them beside the
notebook when a run starts. The folder is read recursively, without hidden files or folders
(any path segment starting with `.`), symlinks, special files or `__pycache__`, and within the
same limits the service applies (so a person learns what is wrong before anything is sent).
"""

from __future__ import annotations

import base64
import os
import stat
from typing import Any

from dsml.lab.scheduler.mapping import ServiceError

MAX_FILES = 500
"""Most files one job's input folder may hold (the service's default limit)."""

MAX_BYTES = 20 * 1024 * 1024
"""Most bytes one job's input files may hold together (the service's default limit, 20 MiB)."""

SKIPPED_FOLDERS = frozenset({"__pycache__"})
"""Folders never sent: Python writes them itself and a run needs none of them."""


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def _folder(root_dir: str, input_uri: str) -> tuple[str, str, str]:
    """(absolute folder, its path under the root for messages, the notebook's own file name)."""
    # as Jupyter's contents manager: no way out by `..` (symlinks inside are skipped below)
    root = os.path.abspath(root_dir)
    folder = os.path.dirname(os.path.abspath(os.path.join(root, input_uri)))
    if os.path.commonpath([root, folder]) != root:
        raise ServiceError(
            400,
            f"input file {input_uri!r} is outside this server's root folder; pick a notebook in it",
        )
    shown = os.path.relpath(folder, root).replace(os.sep, "/")
    return folder, ("/" if shown == "." else "/" + shown), os.path.basename(input_uri)


def list_input_folder(
    root_dir: str, input_uri: str, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES
) -> list[tuple[str, str, int]]:
    """(relative POSIX path, absolute path, size) of each file the job takes along, sorted.

    Refuses (413) a folder over `max_files` files or `max_bytes` bytes as soon as it is seen to
    be over, without reading any content; the notebook itself is sent as the job's notebook.
    """
    folder, shown, notebook_name = _folder(root_dir, input_uri)
    found: list[tuple[str, str, int]] = []
    total = 0
    pending = [("", folder)]
    while pending:
        prefix, here = pending.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as e:
            raise ServiceError(
                400, f"cannot read the input folder {shown}: {e.strerror} ({prefix or '.'})"
            ) from None
        for entry in entries:
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            relative = prefix + entry.name
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                raise ServiceError(
                    400,
                    f"the input folder {shown} holds a file whose name is not UTF-8 "
                    f"({relative.encode('utf-8', 'surrogateescape')!r}); rename it",
                ) from None
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                if entry.name not in SKIPPED_FOLDERS:
                    pending.append((relative + "/", entry.path))
                continue
            if not stat.S_ISREG(info.st_mode) or (not prefix and entry.name == notebook_name):
                continue
            found.append((relative, entry.path, info.st_size))
            total += info.st_size
            if len(found) > max_files:
                raise ServiceError(
                    413,
                    f"the input folder {shown} holds more than {max_files} files (hidden files, "
                    f"symlinks and __pycache__ not counted); a job takes at most {max_files}: keep "
                    "the notebook and the files it reads in a folder of their own, or run the job "
                    "without its input folder",
                )
            if total > max_bytes:
                raise ServiceError(
                    413,
                    f"the input folder {shown} holds more than {_mib(max_bytes)}, the limit for "
                    f"a job's input files ({relative} alone is {_mib(info.st_size)}): keep large "
                    "data on shared storage and read it from there, or move the notebook and the "
                    "files it reads into a folder of their own",
                )
    return sorted(found)


def read_input_folder(
    root_dir: str, input_uri: str, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES
) -> list[dict[str, Any]]:
    """The `input_files` of a job body: the notebook's folder, as this server's user reads it."""
    files = []
    total = 0
    for relative, path, _size in list_input_folder(root_dir, input_uri, max_files, max_bytes):
        try:
            with open(path, "rb") as f:
                # a file may grow between listing and reading: never read past the limit
                content = f.read(max_bytes - total + 1)
        except OSError as e:
            raise ServiceError(
                400,
                f"cannot read {relative} in the input folder: {e.strerror}; make it readable "
                "or move it out of the notebook's folder",
            ) from None
        total += len(content)
        if total > max_bytes:
            raise ServiceError(
                413,
                f"the input files grew past {_mib(max_bytes)} while being read ({relative}); "
                "try again once they are written",
            )
        files.append({"path": relative, "content_base64": base64.b64encode(content).decode()})
    return files


def packaged_paths(job: dict[str, Any]) -> list[str]:
    """The input file paths a service job record names (strings or `{"path": ...}` records)."""
    paths = []
    for item in job.get("input_files") or []:
        path = item.get("path") if isinstance(item, dict) else item
        if isinstance(path, str):
            paths.append(path)
    return paths
