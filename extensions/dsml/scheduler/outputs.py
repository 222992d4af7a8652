"""Run outputs on disk: one folder per run with its executed notebook, its HTML render and
the worker's log (`run.log`, mode 0600, written by the executor), removed together.

Every file operation runs off the event loop (outputs reach 25 MB, rendering takes a second),
so the service keeps answering while one is written, read or rendered.

A full outputs folder (no space left, or a quota) is `OutputsFull`, one line that says how
much was to be written and where: the run that met it fails saying so, the files written
before stay whole (each write is a temporary file and a rename), and the service goes on.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
from pathlib import Path

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from dsml import notebooks
from dsml.scheduler.exceptions import NotFound
from dsml.service.exceptions import ServiceError
from dsml.utils import write_atomic

NOTEBOOK = "output.ipynb"
HTML = "output.html"
NAMES = (NOTEBOOK, HTML)
"""The outputs a run may keep (what the API serves)."""

LOG = "run.log"
"""The run's own log: what its worker printed (kept with the run, never served to others)."""

_FULL = (errno.ENOSPC, errno.EDQUOT)
"""What the OS says when a filesystem (or the account's quota) has no room left."""


class OutputsFull(ServiceError):
    """The outputs folder has no room for a run's output (507 Insufficient Storage)."""

    status = 507


def _write(path: Path, data: str | bytes) -> None:
    """Write one output atomically (0600); a full filesystem is OutputsFull, nothing half kept."""
    try:
        write_atomic(path, data, mode=0o600)
    except OSError as e:
        if e.errno not in _FULL:
            raise
        size = len(data.encode() if isinstance(data, str) else data)
        free = shutil.disk_usage(path.parent).free
        raise OutputsFull(
            f"the outputs folder is full: writing {path.name} of run {path.parent.name} "
            f"({size:,} bytes) to {path.parent.parent} failed with {free:,} bytes free; "
            "delete old runs or give the outputs folder more room"
        ) from None


class Outputs(LoggingConfigurable):
    """The outputs folder: `<root>/<run id>/output.ipynb`, `output.html` and `run.log`."""

    root = Unicode(config=True, help="Folder holding one folder of outputs per run.")

    def folder(self, run_id: int) -> Path:
        """The folder of one run's outputs."""
        return Path(self.root) / str(int(run_id))

    def path(self, run_id: int, name: str) -> Path:
        """The path of one file of the run (`name` is one of NAMES, or LOG)."""
        if name not in NAMES and name != LOG:
            raise NotFound(f"a run keeps no {name!r}; outputs are {', '.join(NAMES)}")
        return self.folder(run_id) / name

    def make_folder(self, run_id: int) -> Path:
        """Create the run's folder, mode 0700 (outputs and log are the owner's business)."""
        folder = self.folder(run_id)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    async def store_result(self, run_id: int, notebook: str | None, html: str | None) -> bool:
        """Keep the executed notebook (and its HTML when sent); True when a notebook was kept.

        Raises OutputsFull when the folder has no room; then the run keeps no output at all.
        """

        def write() -> bool:
            self.make_folder(run_id)
            try:
                if notebook is not None:
                    _write(self.path(run_id, NOTEBOOK), notebook)
                if html is not None:
                    _write(self.path(run_id, HTML), html)
            except OutputsFull:
                # a notebook without its HTML would do, but keep the rule simple: all or none
                for name in NAMES:
                    self.path(run_id, name).unlink(missing_ok=True)
                raise
            return notebook is not None

        return await asyncio.to_thread(write)

    async def store_html(self, run_id: int, data: bytes) -> None:
        """Keep the HTML render the worker sends after its result (404 without a notebook)."""

        def write() -> None:
            if not self.path(run_id, NOTEBOOK).exists():
                raise NotFound(f"run {run_id} kept no notebook to go with this HTML")
            _write(self.path(run_id, HTML), data)

        await asyncio.to_thread(write)

    async def read(self, run_id: int, name: str) -> bytes | None:
        """The bytes of one output, or None when the run kept none.

        The HTML is rendered here, once, when the worker's render has not arrived (or failed);
        with the outputs folder full it is served without being kept.
        """
        path = self.path(run_id, name)

        def load() -> bytes | None:
            source = self.path(run_id, NOTEBOOK)
            if name == HTML and not path.exists() and source.exists():
                html = notebooks.render_html(source)
                try:
                    _write(path, html)
                except OutputsFull as e:
                    self.log.warning("%s", e)
                    return html.encode()
            try:
                return path.read_bytes()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(load)

    async def remove(self, run_ids: list[int]) -> None:
        """Delete the outputs of these runs (retention, deleted jobs)."""

        def rm() -> None:
            for run_id in run_ids:
                shutil.rmtree(self.folder(run_id), ignore_errors=True)

        await asyncio.to_thread(rm)
