"""System accounts of platform users: the naming rule and the lookups, shared by every process.

When the platform runs as root on one machine, each hub user gets a Linux account of their own
(as The Littlest JupyterHub does): the hub creates and locks them (`dsml.hub.accounts`), the
scheduler runs a job owner's runs as theirs, and `dsml up` checks what they can reach. This
module holds only what those three share: how a hub name becomes an account name, and how an
account's ids are found. It starts no process and changes nothing on the system.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import sys
import time
import unicodedata
from dataclasses import dataclass

MAX_LENGTH = 32
"""Longest account name useradd accepts on Linux (in characters)."""

HASH_LENGTH = 8
"""Hex digits of the suffix that keeps a changed or cut name unique."""

NOLOGIN = "/usr/sbin/nologin"
"""Login shell of every platform account: nobody signs in to them, processes are started."""

PREFIX_PATTERN = r"^[a-z_][a-z0-9_-]{0,15}$"
"""What an account name prefix may be (settings `accounts.prefix`)."""

_HASHED = re.compile(rf"-[0-9a-f]{{{HASH_LENGTH}}}$")


def isolated() -> bool:
    """Whether users get accounts of their own: the platform runs as root on Linux."""
    return sys.platform.startswith("linux") and os.geteuid() == 0


def account_name(hub_name: str, prefix: str = "dsml-") -> str:
    """The Linux account name of a hub user: lowercase ASCII, at most 32 characters, unique.

    The readable part is the hub name folded to ASCII (accents dropped), lowercased, with every
    character other than a-z, 0-9, `_` and `-` turned into `-`. When that part differs from the
    hub name, or has to be cut to fit, or could be mistaken for a cut one, a `-` and the first
    8 hex digits of the SHA-256 of the hub name are added, so two hub names never share an
    account: `anna` -> `dsml-anna`, `Anna.B@example.com` -> `dsml-anna-b-example-com-3c1f...`.
    """
    if not re.match(PREFIX_PATTERN, prefix):
        raise ValueError(
            f"account prefix {prefix!r} is not allowed: expected lowercase letters, digits, "
            "_ or - (at most 16, starting with a letter or _)"
        )
    folded = unicodedata.normalize("NFKD", hub_name).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^a-z0-9_-]+", "-", folded.lower()).strip("-")
    readable = re.sub(r"-{2,}", "-", readable)
    plain = prefix + readable
    if readable and readable == hub_name and len(plain) <= MAX_LENGTH and not _HASHED.search(plain):
        return plain
    digest = hashlib.sha256(hub_name.encode()).hexdigest()[:HASH_LENGTH]
    room = MAX_LENGTH - len(prefix) - 1 - HASH_LENGTH
    cut = readable[:room].rstrip("-")
    return f"{prefix}{cut}-{digest}" if cut else f"{prefix}{digest}"


@dataclass(frozen=True)
class Account:
    """An existing system account: its name, ids and home folder."""

    name: str
    uid: int
    gid: int
    home: str

    @property
    def groups(self) -> list[int]:
        """Every group id the account is in (its own first)."""
        return os.getgrouplist(self.name, self.gid)


def lookup(name: str) -> Account | None:
    """The account called `name`, or None when there is none."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def is_locked(name: str) -> bool:
    """Whether the account has expired (root only): the hub locks and expires the account of
    a deleted user, and nothing may start as it any more.

    The password field says nothing here: platform accounts never have a password (`!`).
    """
    try:
        with open("/etc/shadow") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name:
                    expires = fields[7] if len(fields) > 7 else ""
                    expired = expires not in ("", "-1") and int(expires) <= time.time() // 86400
                    return expired
    except (OSError, ValueError):
        return False
    return False


def drop_privileges(account: Account) -> None:
    """Become `account` for good (groups, then gid, then uid); for a child about to exec."""
    os.setgroups(account.groups)
    os.setgid(account.gid)
    os.setuid(account.uid)


def closed_to_others(path: str | os.PathLike[str], execute: bool = False) -> str | None:
    """The first folder or file on the way to `path` another account cannot pass, else None.

    Every folder on the way (the path as written and after links are resolved) needs the
    others' x bit; the file itself needs others' r (or x with `execute`). A platform account
    is never the owner or in the group of the platform's files, so "others" is what it gets.
    """
    import stat

    target = os.path.realpath(path)
    if not os.path.exists(target):
        return str(path)
    seen: set[str] = set()
    for chain in (os.path.abspath(path), target):
        parent = os.path.dirname(chain)
        while parent not in seen:
            seen.add(parent)
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return parent
            if parent == os.path.dirname(parent):
                break
            parent = os.path.dirname(parent)
    mode = os.stat(target).st_mode
    if stat.S_ISDIR(mode):
        need = stat.S_IXOTH
    else:
        need = stat.S_IXOTH if execute else stat.S_IROTH
    return None if mode & need else target


def open_to_all(folder: str | os.PathLike[str]) -> None:
    """Make a tree readable by every account and writable only by its owner.

    Folders and executables 0755, other files 0644; links are left alone. Curated
    environments and kernelspecs get this after a build, whatever the umask was.
    """
    import stat

    def fix(path: str) -> None:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            return
        executable = stat.S_ISDIR(mode) or mode & stat.S_IXUSR
        wanted = 0o755 if executable else 0o644
        if stat.S_IMODE(mode) != wanted:
            os.chmod(path, wanted)

    fix(str(folder))
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            fix(os.path.join(dirpath, name))


def shared_interpreter(python: str) -> str:
    """An interpreter every account can run: `python` if it can, else Debian's of that version.

    On these machines the default python3 lives under /root (mode 0700); a virtualenv made from
    it is unusable to user accounts. As root, use /usr/bin/pythonX.Y instead when it exists.
    """
    if not isolated() or closed_to_others(python, execute=True) is None:
        return python
    debian = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if os.path.exists(debian) and closed_to_others(debian, execute=True) is None:
        return debian
    return python
