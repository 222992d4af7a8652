"""Options shared by several command groups: which settings file and which data dir."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dsml import settings as settings_mod
from dsml.datadir import DataDir


def add_location_options(parser: argparse.ArgumentParser) -> None:
    """Add --settings and --data-dir."""
    parser.add_argument(
        "--settings", default=None, help="settings file (default: hub_config/settings.yaml)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="platform state folder (default: the settings' data_dir)"
    )


def resolve(args: argparse.Namespace, **overrides: Any) -> tuple[dict[str, Any], DataDir]:
    """Load the settings with the command's overrides; return them and their data dir."""
    settings = settings_mod.load(args.settings, data_dir=args.data_dir, **overrides)
    datadir = DataDir(settings["data_dir"], settings.get("environments_dir"))
    # relative paths mean "from where the command runs": pin them before anything else
    # (the hub, its services) reads the settings from another working directory
    settings["data_dir"] = str(datadir.root)
    if settings.get("environments_dir"):
        settings["environments_dir"] = str(datadir.environments)
    if settings["scheduler"].get("config_file"):
        settings["scheduler"]["config_file"] = str(
            Path(settings["scheduler"]["config_file"]).expanduser().resolve()
        )
    return settings, datadir
