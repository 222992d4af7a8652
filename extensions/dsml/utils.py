"""Small functions used in unrelated places (the CLI, the scheduler service, its workers)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from dsml.exceptions import SettingsError


def skip_slow_format_checks() -> None:
    """Stop jsonschema from importing rfc3987_syntax, which compiles a grammar for ~3 s.

    jsonschema imports it for IRI format checks when it is installed (jupyter-events pulls it
    in); nbformat and our settings never check IRIs. Entry points call this first, so a CLI
    command or a service starts in about a second instead of four.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def write_atomic(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o644) -> None:
    """Write a file so that readers never see half of it: a temporary file, then a rename.

    `mode` is set before the rename, so a secret is never readable by others, not even for
    a moment.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$")
_FACTORS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
"""Bytes per suffix of a Kubernetes memory quantity."""


def quantity_bytes(value: str | int) -> int:
    """A Kubernetes memory quantity ('256Mi', '1G', 1024) in bytes."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise SettingsError(
            f"memory {value!r} is not a quantity: use a number with Ki, Mi, Gi, K, M or G"
        )
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


def lower_priority(niceness: int) -> None:
    """Run the calling thread (and what it starts from now on) at `niceness` or lower priority.

    User code (servers, app servers, job workers and their kernels) runs at the
    `accounts.niceness` setting on one machine, so the hub, the proxy and the services keep
    answering while users' code fills every core. Never raises the priority; a system that
    refuses keeps the current one.
    """
    if niceness <= 0:
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if niceness > current:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except (OSError, AttributeError):
        pass
