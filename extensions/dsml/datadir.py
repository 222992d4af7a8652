"""The data directory: where every piece of platform state lives, and its secrets.

One folder holds the hub database, secrets, user homes, built environments and kernelspecs,
so that re-running `dsml up` on the same folder keeps every user, group, file and setting.

The platform's own state (hub/, secrets/, logs/, the services' folders and databases) is
private to the platform's account; user accounts may only pass through the data dir to their
home (users/<name>, theirs) and read the kernelspecs (share/) and environments (envs/).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from dsml.exceptions import DataDirError

ADMIN_TOKEN_SECRET = "admin-api-token"
"""Name of the secret file (in <data dir>/secrets/) holding the dsml-admin service token."""


class DataDir:
    """Paths inside one platform data directory."""

    def __init__(self, root: str | os.PathLike[str], environments_dir: str | None = None):
        self.root = Path(root).expanduser().resolve()
        self._environments_dir = (
            Path(environments_dir).expanduser().resolve() if environments_dir else None
        )

    @property
    def hub(self) -> Path:
        """Folder of the hub's own files (database, proxy pid file)."""
        return self.root / "hub"

    @property
    def hub_db_url(self) -> str:
        """SQLAlchemy URL of the hub database."""
        return f"sqlite:///{self.hub / 'jupyterhub.sqlite'}"

    @property
    def secrets(self) -> Path:
        """Folder of generated secrets, readable by the owner only."""
        return self.root / "secrets"

    @property
    def homes(self) -> Path:
        """Folder holding one home folder per user."""
        return self.root / "users"

    @property
    def environments(self) -> Path:
        """Folder holding one virtualenv per curated environment version."""
        return self._environments_dir or self.root / "envs"

    @property
    def jupyter_data(self) -> Path:
        """A JUPYTER_PATH entry: kernelspecs of the curated environments live below it."""
        return self.root / "share" / "jupyter"

    @property
    def kernels(self) -> Path:
        """Folder of the curated kernelspecs."""
        return self.jupyter_data / "kernels"

    @property
    def demo_users(self) -> Path:
        """JSON file with the demo accounts and their passwords (mode 0600)."""
        return self.root / "demo-users.json"

    @property
    def logs(self) -> Path:
        """Folder of log files of processes the platform starts."""
        return self.root / "logs"

    def home(self, username: str) -> Path:
        """Return the home folder of one user."""
        return self.homes / username

    @property
    def lab_settings(self) -> Path:
        """The settings without secrets, for what user servers check (`dsml check`)."""
        return self.jupyter_data.parent / "dsml-settings.json"

    def ensure(self) -> None:
        """Create the folders with their modes and prove the directory is writable.

        Raises DataDirError when it is not writable.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for sub in (self.hub, self.homes, self.environments, self.kernels, self.logs):
                sub.mkdir(parents=True, exist_ok=True)
            self.secrets.mkdir(mode=0o700, exist_ok=True)
            self.protect()
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-check-"):
                pass
        except OSError as e:
            raise DataDirError(
                f"data dir {self.root} is not writable ({e.strerror}); "
                "pass --data-dir with a folder you can write to"
            ) from None

    def protect(self) -> None:
        """Set the modes that keep the platform's state from user accounts.

        Accounts pass through the root and users/ (0711) to their own home, read share/ and
        the environments (0755); hub/, secrets/, logs/ and the services' folders are 0700,
        and every database in them 0600, also when made by an earlier version.
        """
        os.chmod(self.root, 0o711)
        os.chmod(self.homes, 0o711)
        for shared in (self.jupyter_data.parent, self.jupyter_data, self.kernels):
            os.chmod(shared, 0o755)
        if self.environments.parent == self.root:
            os.chmod(self.environments, 0o755)
        for private in (self.hub, self.secrets, self.logs):
            os.chmod(private, 0o700)
        for sub in self.root.iterdir():
            if sub.name in ("portal",) and sub.is_dir():
                os.chmod(sub, 0o700)
        for pattern in ("*.sqlite*", "*/*.sqlite*", "*/*.db", "hub/settings.json", "logs/*"):
            for path in self.root.glob(pattern):
                if path.is_file() and not path.is_symlink():
                    os.chmod(path, 0o600)

    def secret(self, name: str, nbytes: int = 32) -> str:
        """Return the secret stored under `name`, creating it (hex, mode 0600) on first use."""
        path = self.secrets / name
        if path.exists():
            return path.read_text().strip()
        value = secrets.token_hex(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value

    def secret_path(self, name: str, nbytes: int = 32) -> Path:
        """Return the path of a secret file, creating the secret if needed."""
        self.secret(name, nbytes)
        return self.secrets / name
