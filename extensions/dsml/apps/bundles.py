"""An app version's bundle: the notebook and the files it reads, checked, hashed and kept.

A bundle is a gzip tar of `notebook.ipynb` (its kernelspec set to the pinned kernel of the
environment version it was published with) and the files next to it under their relative
paths. Bundles are stored by their sha256 (`<root>/<sha256>.tar.gz`), so they never change
once written; a thumbnail sits beside it (`<sha256>.thumb`). The tar is made deterministic
(fixed times, owners and modes) so the same content always has the same hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dsml import kernels
from dsml.apps.exceptions import BadRequest, TooLarge
from dsml.notebooks import NotebookError, check_notebook
from dsml.utils import write_atomic

NOTEBOOK = "notebook.ipynb"
"""The notebook's name inside a bundle."""

IMAGE_TYPES = ("image/png", "image/jpeg")
"""Output types a thumbnail may come from."""

MAX_THUMBNAIL_BYTES = 1024 * 1024
"""Largest thumbnail kept, in bytes."""


@dataclass
class Bundle:
    """A checked bundle, ready to store."""

    data: bytes
    sha256: str
    files: list[str]
    size_bytes: int
    thumbnail: bytes | None = None
    environment: str = ""
    environment_version: str = ""
    kernel: str = ""
    notebook: dict[str, Any] = field(default_factory=dict)


def decode_base64(value: Any, what: str) -> bytes:
    """Bytes from a base64 string (BadRequest naming `what` otherwise)."""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a base64 string, found {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64") from None


def check_relative_path(path: Any) -> str:
    """A file's path inside a bundle: relative, forward slashes, no `..` (BadRequest else)."""
    if not isinstance(path, str) or not path or len(path) > 255:
        shown = path[:80] if isinstance(path, str) else path
        raise BadRequest(f"file name {shown!r} must be a relative path of 1-255 characters")
    pure = PurePosixPath(path)
    if (
        pure.is_absolute()
        or "\\" in path
        or "\x00" in path
        or any(part in ("..", ".", "") for part in path.split("/"))
    ):
        raise BadRequest(
            f"file name {path!r} must be a relative path below the notebook's folder "
            "(no leading /, no .., no backslashes)"
        )
    if path == NOTEBOOK:
        raise BadRequest(f"file name {NOTEBOOK!r} is the bundle's notebook; rename the file")
    return path


def first_image(nb: dict[str, Any]) -> bytes | None:
    """The notebook's first PNG or JPEG output, for the gallery's thumbnail."""
    for cell in nb.get("cells") or []:
        for output in cell.get("outputs") or [] if isinstance(cell, dict) else []:
            data = output.get("data") if isinstance(output, dict) else None
            if not isinstance(data, dict):
                continue
            for kind in IMAGE_TYPES:
                value = data.get(kind)
                if isinstance(value, list):
                    value = "".join(value)
                if isinstance(value, str):
                    try:
                        raw = base64.b64decode(value)
                    except (binascii.Error, ValueError):
                        continue
                    if 0 < len(raw) <= MAX_THUMBNAIL_BYTES:
                        return raw
    return None


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    # mtime 0 in the gzip header too, so equal content gives an equal hash
    import gzip

    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in sorted(members):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def make_bundle(
    body: dict[str, Any],
    environments: list[str],
    versions: dict[str, str | None],
    *,
    max_files: int,
    max_bytes: int,
) -> Bundle:
    """Check a publish request's notebook, files, environment and thumbnail; build the tar.

    `versions` maps each environment to its current built version (pinned into the bundle).
    """
    nb = body.get("notebook")
    if not isinstance(nb, dict):
        raise BadRequest("notebook must be a Jupyter notebook (an nbformat 4 JSON object)")
    try:
        check_notebook(nb, "notebook")
    except NotebookError as e:
        raise BadRequest(str(e)) from None
    environment = body.get("environment") or kernels.notebook_environment(nb)
    if not environment:
        raise BadRequest(
            "environment is missing and the notebook's kernel is not a curated environment; "
            f"pick one of {', '.join(environments)}"
        )
    if environment not in environments:
        raise BadRequest(
            f"environment {environment!r} is not a curated environment here; "
            f"pick one of {', '.join(environments)}"
        )
    version = versions.get(environment) or ""
    kernel = kernels.kernel_name(environment, version or None)
    nb = json.loads(json.dumps(nb))
    meta = nb.setdefault("metadata", {})
    spec = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    meta["kernelspec"] = {
        **spec,
        "name": kernel,
        "display_name": spec.get("display_name") or environment,
        "language": "python",
    }
    notebook_bytes = json.dumps(nb, sort_keys=True).encode()

    files = body.get("files") or {}
    if not isinstance(files, dict):
        raise BadRequest("files must be an object of relative path -> base64 content")
    if len(files) > max_files:
        raise TooLarge(f"{len(files)} files sent with the notebook; the limit is {max_files}")
    members = [(NOTEBOOK, notebook_bytes)]
    for path, content in files.items():
        members.append((check_relative_path(path), decode_base64(content, f"file {path!r}")))
    size = sum(len(data) for _, data in members)
    if size > max_bytes:
        raise TooLarge(
            f"the notebook and its files are {size:,} bytes; the limit is {max_bytes:,} bytes"
        )

    thumbnail = None
    if body.get("thumbnail"):
        thumbnail = decode_base64(body["thumbnail"], "thumbnail")
        if len(thumbnail) > MAX_THUMBNAIL_BYTES:
            raise TooLarge(
                f"thumbnail is {len(thumbnail):,} bytes; the limit is {MAX_THUMBNAIL_BYTES:,}"
            )
        if not (thumbnail.startswith(b"\x89PNG") or thumbnail.startswith(b"\xff\xd8")):
            raise BadRequest("thumbnail must be a PNG or JPEG image")
    else:
        thumbnail = first_image(nb)

    data = _tar(members)
    return Bundle(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        files=sorted(p for p, _ in members if p != NOTEBOOK),
        size_bytes=size,
        thumbnail=thumbnail,
        environment=environment,
        environment_version=version,
        kernel=kernel,
        notebook=nb,
    )


class BundleStore:
    """Bundles on disk by hash, written atomically, never changed."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the bundle with this hash lives."""
        return self.root / f"{sha256}.tar.gz"

    def save(self, bundle: Bundle) -> None:
        """Write the bundle (and its thumbnail) unless the same content is there already."""
        target = self.path(bundle.sha256)
        if not target.exists():
            write_atomic(target, bundle.data, mode=0o600)
        if bundle.thumbnail is not None:
            write_atomic(self.root / f"{bundle.sha256}.thumb", bundle.thumbnail, mode=0o600)

    def read(self, sha256: str) -> bytes:
        """A bundle's bytes."""
        return self.path(sha256).read_bytes()

    def thumbnail(self, sha256: str) -> bytes | None:
        """A version's thumbnail, if it has one."""
        path = self.root / f"{sha256}.thumb"
        return path.read_bytes() if path.exists() else None

    def remove(self, sha256: str) -> None:
        """Delete a bundle no version points at any more."""
        for path in (self.path(sha256), self.root / f"{sha256}.thumb"):
            path.unlink(missing_ok=True)


def kernel_of(data: bytes) -> str:
    """The kernel a stored bundle's notebook names."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile(NOTEBOOK)
        nb = json.loads(member.read()) if member else {}
    return ((nb.get("metadata") or {}).get("kernelspec") or {}).get("name", "")
