"""A real PostgreSQL server for tests: Debian's `postgresql` package, one cluster per test module.

The cluster lives in a temporary folder and listens on 127.0.0.1 at a free port, with its unix
socket in that folder (never /var/run/postgresql, where the machine's own cluster may be).
PostgreSQL refuses to run as root, so as root every `initdb`/`pg_ctl` runs as the `postgres`
account the Debian package makes. Clients log in with a password (scram-sha-256), as
production services do.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from conftest import free_port, passable

ACCOUNT = "postgres"
"""The system account the server runs as when the tests run as root (Debian's package makes it)."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (`initdb`, `pg_ctl`), or a one-line error."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError(
            "no /usr/lib/postgresql/*/bin/initdb: install Debian's postgresql (make test does)"
        )
    return Path(found[-1]).parent


class PostgreSQL:
    """A PostgreSQL cluster of the test's own: start, restart, stop; URLs of its databases."""

    def __init__(self, base: Path):
        self.base = base
        self.data = base / "data"
        self.socket_dir = base / "socket"
        self.log = base / "postgresql.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.bin = bin_dir()

    def _as_owner(self, *command: str, **kwargs: object) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program as the cluster's owner (`postgres` when we are root)."""
        prefix = ["runuser", "-u", ACCOUNT, "--"] if os.geteuid() == 0 else []
        return subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=False, **kwargs
        )

    def _check(self, result: subprocess.CompletedProcess, what: str) -> None:
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr}\n{log}")

    def start(self) -> PostgreSQL:
        """initdb a new cluster and start it; returns when it accepts connections."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            passable(self.base)
            owner = pwd.getpwnam(ACCOUNT)
            for path in (self.base, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam(ACCOUNT).pw_uid, -1)
        os.chmod(pwfile, 0o600)
        self._check(
            self._as_owner(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",  # a throw-away cluster: no fsync at creation
                "--encoding=UTF8",
                "--locale=C",
            ),
            "initdb",
        )
        pwfile.unlink()
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        self._check(
            self._as_owner(
                str(self.bin / "pg_ctl"),
                action,
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                *extra,
            ),
            f"pg_ctl {action}",
        )

    def restart(self) -> float:
        """`pg_ctl restart -m fast` (open sessions are cut); returns the seconds it took."""
        began = time.monotonic()
        self._pg_ctl("restart", "-m", "fast")
        return time.monotonic() - began

    def shut_down(self) -> None:
        """`pg_ctl stop -m fast`: the server is away (sessions cut) until `start_again`."""
        self._pg_ctl("stop", "-m", "fast")

    def start_again(self) -> None:
        """Start the server `shut_down` stopped, on the same port and data."""
        self._pg_ctl("start")

    def stop(self) -> None:
        """Stop the server (immediate: its data is thrown away) and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            self._as_owner(
                str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate"
            )
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """The SQLAlchemy URL of a database on this server (password included)."""
        return f"postgresql+psycopg://{user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        """Run one statement (autocommit, so CREATE DATABASE works) and return its rows."""
        import psycopg

        dsn = f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"
        with psycopg.connect(dsn, autocommit=True) as connection:
            cursor = connection.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        """Create an empty database owned by the superuser; returns its URL."""
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)
