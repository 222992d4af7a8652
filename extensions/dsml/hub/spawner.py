"""The local spawner: one JupyterLab process per user, a home folder each under the data dir.

It builds on JupyterHub's LocalProcessSpawner, which switches to the user's uid and gid: when the
platform runs as root, each server runs as its user's own system account (`dsml.hub.accounts`,
made on first spawn if the hub did not make it yet) in a home only that account can open. Not
as root, every server runs as the platform's account (one account for all, said by `dsml up`).
It adds what the platform needs on one machine: the user's copy of training/ and
shared_notebooks/ (copied as the account, never as root), kernels from the curated environments
only, and `--allow-root` only when a server would itself run as root.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Integer, List, Unicode, default

from dsml.hub.accounts import SystemAccounts
from dsml.hub.apps import is_app_server
from dsml.hub.homes import seed_home
from dsml.system_accounts import Account, account_name, drop_privileges, lookup
from dsml.utils import lower_priority, write_atomic

LAB_PAGE_CONFIG = {
    # JupyterLab's news and update check fetch from the internet, and its first start asks
    # whether to: the platform works air-gapped, so the plugin that does both is off
    "disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}
}
"""JupyterLab's page config for every user server (labconfig/page_config.json)."""


class DsmlLocalSpawner(SystemAccounts, LocalProcessSpawner):
    """LocalProcessSpawner that runs each server as its user's account, seeds homes and offers
    only curated kernels."""

    seed_folders = List(
        Unicode(),
        config=True,
        help="Folders copied into each user's home on every start (user changes are kept).",
    )
    jupyter_data_dir = Unicode(
        "",
        config=True,
        help="Folder put first on JUPYTER_PATH: the curated kernelspecs live there.",
    )
    default_kernel = Unicode(
        "dsml-datascience", config=True, help="Kernelspec a new notebook gets by default."
    )
    home_dir_template = Unicode(
        "", config=True, help="Home folder of a user; {username} is the hub name."
    )
    settings_file = Unicode(
        "",
        config=True,
        help="Settings file the server's `dsml check` reads (a copy without secrets).",
    )
    apps_url = Unicode(
        "",
        config=True,
        help="URL app servers reach the apps service at, e.g. http://127.0.0.1:8790/services/apps/.",
    )
    usage_token = Unicode(
        "",
        config=True,
        help="Token app servers pass to their kernels as DSML_USAGE_TOKEN: it reads the "
        "portal's usage totals and nothing else (dsml.hub.config.USAGE_READER_SERVICE).",
    )
    preheated_kernels = Unicode(
        "1", config=True, help="Kernels an app server keeps started and rendered ahead of viewers."
    )
    niceness = Integer(
        0,
        config=True,
        help="CPU niceness of every server and what it starts (0-19; the accounts.niceness "
        "setting): the hub and the services keep answering when users' code is busy.",
    )

    @default("poll_interval")
    def _poll_interval_default(self) -> int:
        # a poll is one waitpid of the hub's own child: every 5 s (not JupyterHub's 30) a dead
        # server, an app's above all, is noticed and started again by its next visitor sooner
        return 5

    @property
    def is_app(self) -> bool:
        """Whether this is an app server (a named server `app-<slug>`): it runs only Voila."""
        return is_app_server(self.name or "")

    @property
    def home_dir(self) -> str:
        """The user's home folder under the data dir."""
        if self.home_dir_template:
            return self.home_dir_template.format(username=self.user.name)
        return str(self.account_home(self.user.name))

    def _account(self) -> Account | None:
        if not self.enabled:
            return None
        return lookup(account_name(self.user.name, self.prefix))

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        """As the account (groups, gid, uid) in the home, at the lower CPU priority; as the
        platform's account when accounts are off."""
        account = self._account()
        home = self.home_dir
        if self.enabled and account is None:
            raise RuntimeError(f"user {name} has no system account; it is made before a spawn")

        niceness = self.niceness

        def preexec() -> None:
            lower_priority(niceness)
            if account is not None:
                drop_privileges(account)
            os.chdir(home)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """USER, HOME and SHELL of the account (terminals get bash: the login shell is nologin)."""
        account = self._account()
        env["USER"] = account.name if account else self.user.name
        env["HOME"] = self.home_dir
        env["SHELL"] = "/bin/bash"
        return env

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Internal TLS is not used on one machine: keep the paths."""
        return paths

    def get_args(self) -> list[str]:
        """Curated kernels, Notebook Jobs on the scheduler service, --allow-root as root.

        An app server takes no JupyterLab arguments: it reads what it needs from the hub's
        environment (`dsml.apps.server`).
        """
        if self.is_app:
            return [f"--pool-size={self.preheated_kernels}"]
        args = super().get_args()
        args += [
            "--ServerApp.kernel_spec_manager_class="
            "dsml.environments.kernelspecs.CuratedKernelSpecManager",
            f"--MappingKernelManager.default_kernel_name={self.default_kernel}",
            # jupyter-scheduler's UI, served by its extension app subclass whose handlers keep
            # the service's error statuses; jobs run in the hub's scheduler service
            "--ServerApp.jpserver_extensions=jupyter_scheduler=False",
            "--ServerApp.jpserver_extensions=dsml.lab.scheduler=True",
            "--SchedulerApp.scheduler_class=dsml.lab.scheduler.DsmlScheduler",
            "--SchedulerApp.environment_manager_class=dsml.lab.scheduler.DsmlEnvironmentManager",
            "--SchedulerApp.job_files_manager_class=dsml.lab.scheduler.DsmlJobFilesManager",
            # jupyter-scheduler creates its tables at start: keep them in memory, not in $HOME
            "--SchedulerApp.db_url=sqlite://",
            # `dsml check` for the open notebook (the JupyterLab status bar item calls it)
            "--ServerApp.jpserver_extensions=dsml.lab.check=True",
            "--ServerApp.jpserver_extensions=dsml.lab.apps=True",
        ]
        # the endpoint checks against the settings the hub runs with (`dsml up` resolves them)
        if self.settings_file:
            args.append(f"--DsmlCheck.settings_file={self.settings_file}")
        # its status bar item, prebuilt in the source tree: an editable install (`make`) does
        # not copy pyproject's data-files to share/jupyter/labextensions, so point JupyterLab at it
        source = Path(__file__).resolve().parents[2]
        labextensions = source / "labextension" / "dsml_env_check" / "labextension"
        if labextensions.is_dir():
            args.append(f"--LabApp.extra_labextensions_path={labextensions}")
        if os.geteuid() == 0 and not self.enabled:
            args.append("--allow-root")
        return args

    def get_env(self) -> dict[str, str]:
        """Put the curated kernelspecs first on JUPYTER_PATH."""
        env = super().get_env()
        if self.is_app:
            env["DSML_APPS_URL"] = self.apps_url
            env["DSML_APP_SLUG"] = self.name[len("app-") :]
            if self.usage_token:
                env["DSML_USAGE_TOKEN"] = self.usage_token
        if self.jupyter_data_dir:
            rest = env.get("JUPYTER_PATH") or os.environ.get("JUPYTER_PATH", "")
            env["JUPYTER_PATH"] = os.pathsep.join(p for p in (self.jupyter_data_dir, rest) if p)
            if not self.is_app:
                rest = env.get("JUPYTER_CONFIG_PATH") or os.environ.get("JUPYTER_CONFIG_PATH", "")
                config = str(self.lab_config_dir())
                env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in (config, rest) if p)
        return env

    def lab_config_dir(self) -> Path:
        """A JUPYTER_CONFIG_PATH entry with the platform's JupyterLab page config (no news).

        It sits next to the curated kernelspecs (readable by every account) and is written
        again on each start, so a platform upgrade changes it.
        """
        folder = Path(self.jupyter_data_dir).parent / "jupyter-config"
        labconfig = folder / "labconfig"
        labconfig.mkdir(mode=0o755, parents=True, exist_ok=True)
        for path in (folder, labconfig):
            os.chmod(path, 0o755)
        write_atomic(
            labconfig / "page_config.json", json.dumps(LAB_PAGE_CONFIG, indent=1) + "\n", mode=0o644
        )
        return folder

    async def start(self):  # type: ignore[no-untyped-def]
        """Make the account if needed, seed the home folder as it, then start the server.

        Named servers are for apps only: `app-<slug>` runs the app server, whatever the
        request's options say (the consent page is skipped for these: see dsml.hub.apps).
        """
        home = self.home_dir
        if self.name and not self.is_app:
            raise RuntimeError(
                f"named servers are for apps (app-<slug>); {self.name!r} is not one: "
                "use your default server for JupyterLab"
            )
        account = await self.ensure_account(self.user.name)
        if self.is_app:
            if account is None:
                Path(home).mkdir(mode=0o700, parents=True, exist_ok=True)
            self.user_options = {}
            self.cmd = [sys.executable, "-m", "dsml.apps.server"]
            return await super().start()
        if account is None:
            report = await asyncio.to_thread(
                seed_home, Path(home), [Path(f) for f in self.seed_folders]
            )
        else:
            report = await asyncio.to_thread(self._seed_as, account, home)
        if report["added"] or report["updated"]:
            self.log.info(
                "Seeded %s: %d added, %d updated, %d kept as the user left them",
                home,
                len(report["added"]),
                len(report["updated"]),
                len(report["kept"]),
            )
        return await super().start()

    def _seed_as(self, account: Account, home: str) -> dict[str, list[str]]:
        """Seed the home in a child running as the account: root never writes in a user's home."""
        result = subprocess.run(
            [sys.executable, "-m", "dsml.hub.homes", home, *self.seed_folders],
            capture_output=True,
            text=True,
            user=account.uid,
            group=account.gid,
            extra_groups=[],
            cwd=home,
            env={"PATH": os.environ.get("PATH", ""), "HOME": home, "LANG": "C.UTF-8"},
        )
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"seeding {home} as {account.name} failed: {tail[0]}")
        return json.loads(result.stdout)
