"""The scheduler service's settings: config files take effect, in order, and the command line wins.

The hub hands the service the platform's settings as a generated JSON config file; an admin's
Python config file named after it must win over it (it did not: the app passed its own values
to the executor, silently overriding `c.LocalExecutor.warm_workers`).
"""

from __future__ import annotations

import json
from pathlib import Path

from dsml.hub import config as hubconfig
from dsml.scheduler.app import SchedulerApp
from dsml.scheduler.executors.kubernetes import KubernetesExecutor
from dsml.scheduler.executors.local import LocalExecutor


def app_with(argv: list[str]) -> SchedulerApp:
    """A SchedulerApp initialized from `argv`, as `python -m dsml.scheduler ARGV` makes it."""
    SchedulerApp.clear_instance()
    app = SchedulerApp()
    app.initialize(argv)
    return app


def test_an_admin_config_file_wins_over_the_settings(tmp_path: Path) -> None:
    generated = tmp_path / "settings-config.json"
    generated.write_text(
        json.dumps(
            {
                "SchedulerApp": {"data_dir": str(tmp_path / "data")},
                "Executor": {"capacity": 2},
                "LocalExecutor": {"warm_workers": 1},
                "Notifier": {"smtp_host": "mail.settings"},
            }
        )
    )
    admin = tmp_path / "scheduler_config.py"
    admin.write_text(
        "c.LocalExecutor.warm_workers = 3\n"
        "c.Executor.capacity = 5\n"
        "c.RunManager.tick_seconds = 0.5\n"
        "c.Notifier.smtp_host = 'mail.admin'\n"
    )
    app = app_with([f"--config-file={generated}", f"--config-file={admin}"])
    try:
        assert isinstance(app.executor_obj, LocalExecutor)
        assert app.executor_obj.warm_workers == 3
        assert app.executor_obj.capacity == 5
        assert app.manager.tick_seconds == 0.5
        assert app.manager.notifier is not None
        assert app.manager.notifier.smtp_host == "mail.admin"
        assert app.data_dir == str(tmp_path / "data")
        assert app.executor_obj.log_dir == str(tmp_path / "data" / "logs")
    finally:
        app.store.close()


def test_the_command_line_wins_over_every_file(tmp_path: Path) -> None:
    config = tmp_path / "scheduler_config.py"
    config.write_text(
        f"c.SchedulerApp.data_dir = {str(tmp_path / 'data')!r}\nc.Executor.capacity = 5\n"
    )
    app = app_with([f"--config-file={config}", "--Executor.capacity=7"])
    try:
        assert app.executor_obj.capacity == 7
    finally:
        app.store.close()


def test_the_executor_is_picked_by_short_name(tmp_path: Path) -> None:
    app = app_with(
        [f"--SchedulerApp.data_dir={tmp_path}", "--SchedulerApp.executor_class=kubernetes"]
    )
    try:
        assert isinstance(app.executor_obj, KubernetesExecutor)
    finally:
        app.store.close()


def test_the_hub_writes_the_settings_as_a_config_file(tmp_path: Path) -> None:
    """What hub/config.py hands the service: the settings file's values, then the admin's file."""
    from dsml import settings as settings_mod

    admin = tmp_path / "mine.py"
    admin.write_text("c.LocalExecutor.warm_workers = 4\n")
    settings = settings_mod.validate(
        {
            "data_dir": str(tmp_path / "platform"),
            "scheduler": {"capacity": 3, "warm_workers": 0, "config_file": str(admin)},
        },
        source="test",
    )
    datadir = hubconfig.datadir_for(settings)
    files = hubconfig.scheduler_config_files(settings, datadir)
    assert files[-1] == str(admin)
    assert (Path(files[0]).stat().st_mode & 0o777) == 0o600
    app = app_with([f"--config-file={f}" for f in files])
    try:
        assert app.executor_obj.capacity == 3
        assert app.executor_obj.warm_workers == 4
        assert app.data_dir == str(datadir.root / "scheduler")
    finally:
        app.store.close()
