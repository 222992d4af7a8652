"""The local spawner: one JupyterLab process per user, a home folder each under the data dir.

It adds to SimpleLocalProcessSpawner what the platform needs on one machine: the user's copy of
training/ and shared_notebooks/, kernels from the curated environments only, and `--allow-root`
when the hub itself runs as root.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import List, Unicode

from dsml.hub.homes import seed_home


class DsmlLocalSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner that seeds homes and offers only curated kernels."""

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

    def get_args(self) -> list[str]:
        """Curated kernels, Notebook Jobs on the scheduler service, --allow-root as root."""
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
        ]
        # the endpoint checks against the settings the hub runs with (`dsml up` resolves them)
        if os.environ.get("DSML_SETTINGS_JSON"):
            args.append(f"--DsmlCheck.settings_file={os.environ['DSML_SETTINGS_JSON']}")
        # its status bar item, prebuilt in the source tree: an editable install (`make`) does
        # not copy pyproject's data-files to share/jupyter/labextensions, so point JupyterLab at it
        source = Path(__file__).resolve().parents[2]
        labextensions = source / "labextension" / "dsml_env_check" / "labextension"
        if labextensions.is_dir():
            args.append(f"--LabApp.extra_labextensions_path={labextensions}")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        return args

    def get_env(self) -> dict[str, str]:
        """Put the curated kernelspecs first on JUPYTER_PATH."""
        env = super().get_env()
        if self.jupyter_data_dir:
            rest = env.get("JUPYTER_PATH") or os.environ.get("JUPYTER_PATH", "")
            env["JUPYTER_PATH"] = os.pathsep.join(p for p in (self.jupyter_data_dir, rest) if p)
        return env

    async def start(self):  # type: ignore[no-untyped-def]
        """Seed the home folder (without blocking the hub), then start the server."""
        home = self.home_dir
        report = await asyncio.to_thread(
            seed_home, Path(home), [Path(f) for f in self.seed_folders]
        )
        if report["added"] or report["updated"]:
            self.log.info(
                "Seeded %s: %d added, %d updated, %d kept as the user left them",
                home,
                len(report["added"]),
                len(report["updated"]),
                len(report["kept"]),
            )
        return await super().start()
