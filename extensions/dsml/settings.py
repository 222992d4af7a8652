"""The platform settings file: its schema, its defaults, and validation with one-line errors.

Every deployment (a laptop with `dsml up`, the hub pod on Kubernetes) reads the same YAML file.
People edit it, so the schema forbids unknown keys and every error names the key, the value
found and what is allowed.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from dsml.exceptions import SettingsError

GROUPS = ("platform-admins", "analysts", "data-scientists", "stakeholders", "newcomers")
"""The platform's groups, in the order the demo seeds them."""

LAB_GROUPS = ("platform-admins", "analysts", "data-scientists", "newcomers")
"""Groups whose members may start a JupyterLab server (stakeholders only view apps)."""

_port = {"type": "integer", "minimum": 1, "maximum": 65535}
_seconds = {"type": "integer", "minimum": 0}

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hub": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ip": {"type": "string", "minLength": 1},
                "port": _port,
                "base_url": {"type": "string", "pattern": "^/"},
            },
        },
        "data_dir": {"type": "string", "minLength": 1},
        "environments_dir": {"type": ["string", "null"]},
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "kind": {"enum": ["native", "oauth"]},
                "minimum_password_length": {"type": "integer", "minimum": 8, "maximum": 72},
                "allowed_failed_logins": {"type": "integer", "minimum": 0},
                "seconds_before_next_try": _seconds,
                # an importable class: `package.module.Class`
                "oauth_class": {
                    "type": ["string", "null"],
                    "pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
                },
                # trait names of that class and their values
                "oauth_config": {
                    "type": "object",
                    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                },
            },
        },
        "spawner": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "start_timeout_seconds": {"type": "integer", "minimum": 5},
                "http_timeout_seconds": {"type": "integer", "minimum": 5},
                "default_url": {"type": "string", "pattern": "^/"},
                "default_environment": {"type": "string", "minLength": 1},
            },
        },
        "culler": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "timeout_seconds": {"type": "integer", "minimum": 60},
                "every_seconds": {"type": "integer", "minimum": 10},
                "max_age_seconds": _seconds,
            },
        },
        "scheduler": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "capacity": {"type": "integer", "minimum": 1, "maximum": 64},
                "warm_workers": {"type": "integer", "minimum": 0, "maximum": 8},
                "max_output_bytes": {"type": "integer", "minimum": 1024},
                # data memory (RLIMIT_DATA) of a local run's kernel; 0: no cap
                "job_memory_limit_bytes": {"type": "integer", "minimum": 0},
                "smtp_host": {"type": "string"},
                "smtp_port": _port,
                "smtp_from": {"type": "string", "minLength": 3},
                "config_file": {"type": ["string", "null"], "minLength": 1},
                "max_jobs_per_user": {"type": "integer", "minimum": 1},
                "max_queued_runs_per_user": {"type": "integer", "minimum": 1},
                "max_retries": {"type": "integer", "minimum": 0, "maximum": 1000},
                "default_deadline_seconds": {"type": "integer", "minimum": 0},
                "max_deadline_seconds": {"type": "integer", "minimum": 1},
                "max_output_bytes_per_user": {"type": "integer", "minimum": 0},
                "max_input_files": {"type": "integer", "minimum": 0},
                "max_input_bytes": {"type": "integer", "minimum": 0},
                "max_notify_emails": {"type": "integer", "minimum": 0},
                "email_domains": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "uniqueItems": True,
                },
                "webhook_allow": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "uniqueItems": True,
                },
                "rights_cache_seconds": {"type": "number", "minimum": 0},
            },
        },
        "accounts": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                # what every system account name starts with (see dsml.system_accounts)
                "prefix": {"type": "string", "pattern": r"^[a-z_][a-z0-9_-]{0,15}$"},
                # the CPU priority of user code on one machine (dsml.utils.lower_priority)
                "niceness": {"type": "integer", "minimum": 0, "maximum": 19},
            },
        },
        "environments": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
            "uniqueItems": True,
        },
        "apps": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_files": {"type": "integer", "minimum": 0},
                "max_bundle_bytes": {"type": "integer", "minimum": 1},
                "preheated_kernels": {"type": "integer", "minimum": 0, "maximum": 16},
                # apps as code: published when the apps service starts, kept in step
                "declared": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["slug", "owner", "notebook", "title"],
                        "properties": {
                            "slug": {
                                "type": "string",
                                "pattern": "^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,25}$",
                            },
                            "owner": {"type": "string", "minLength": 1},
                            "notebook": {"type": "string", "minLength": 1},
                            "title": {"type": "string", "minLength": 1, "maxLength": 200},
                            "description": {"type": "string", "maxLength": 2000},
                            "environment": {"type": "string", "minLength": 1},
                            "files": {"type": "array", "items": {"type": "string"}},
                            "always_on": {"type": "boolean"},
                            "share": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "users": {"type": "array", "items": {"type": "string"}},
                                    "groups": {"type": "array", "items": {"type": "string"}},
                                    "everyone": {"type": "boolean"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
"""JSON schema (draft 7) of the settings file."""

DEFAULTS: dict[str, Any] = {
    "hub": {"ip": "127.0.0.1", "port": 8000, "base_url": "/"},
    "data_dir": ".dsml",
    "environments_dir": None,
    "auth": {
        "kind": "native",
        "minimum_password_length": 10,
        "allowed_failed_logins": 5,
        "seconds_before_next_try": 300,
        "oauth_class": None,
        "oauth_config": {},
    },
    "spawner": {
        "start_timeout_seconds": 60,
        "http_timeout_seconds": 30,
        "default_url": "/lab",
        "default_environment": "datascience",
    },
    "culler": {
        "enabled": True,
        "timeout_seconds": 3600,
        "every_seconds": 300,
        "max_age_seconds": 0,
    },
    "scheduler": {
        "capacity": 2,
        "warm_workers": 1,
        "max_output_bytes": 25 * 1024 * 1024,
        "job_memory_limit_bytes": 4 * 1024**3,
        "smtp_host": "",
        "smtp_port": 25,
        "smtp_from": "dsml-scheduler@localhost",
        "config_file": None,
        "max_jobs_per_user": 500,
        "max_queued_runs_per_user": 500,
        "max_retries": 10,
        "default_deadline_seconds": 6 * 3600,
        "max_deadline_seconds": 7 * 24 * 3600,
        "max_output_bytes_per_user": 5 * 1024**3,
        "max_input_files": 500,
        "max_input_bytes": 20 * 1024 * 1024,
        "max_notify_emails": 10,
        "email_domains": [],
        "webhook_allow": [],
        "rights_cache_seconds": 60,
    },
    "accounts": {"prefix": "dsml-", "niceness": 10},
    "environments": ["python-minimal", "datascience"],
    "apps": {
        "max_files": 20,
        "max_bundle_bytes": 20 * 1024 * 1024,
        "preheated_kernels": 1,
        "declared": [],
    },
}
"""Values used for every key the settings file leaves out."""


def platform_root() -> Path:
    """Return the folder that holds hub_config/, images/, training/ and shared_notebooks/."""
    env = os.environ.get("DSML_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def default_settings_path() -> Path:
    """Return the settings file used when none is given: hub_config/settings.yaml."""
    return platform_root() / "hub_config" / "settings.yaml"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge override onto a copy of base: maps merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _describe(error: Any) -> str:
    """Turn a schema error into 'key = value is not allowed: what is allowed'."""
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {})))
        extra = sorted(set(error.instance) - set(schema.get("properties", {})))
        where = f"under {key}" if error.absolute_path else "at the top level"
        return f"unknown key {', '.join(extra)} {where}; allowed keys: {allowed}"
    value = yaml.safe_dump(error.instance, default_flow_style=True).strip().removesuffix("...")
    value = value.strip()
    if error.validator == "enum":
        allowed = "one of " + ", ".join(str(v) for v in error.validator_value)
    elif error.validator == "type":
        allowed = f"a value of type {error.validator_value}"
    elif error.validator == "minimum":
        allowed = f"a number >= {error.validator_value}"
    elif error.validator == "maximum":
        allowed = f"a number <= {error.validator_value}"
    elif error.validator == "pattern":
        allowed = f"a string matching {error.validator_value}"
    elif error.validator == "minLength":
        allowed = "a non-empty string"
    elif error.validator == "uniqueItems":
        allowed = "a list without repeats"
    else:
        allowed = error.message
    return f"{key} = {value} is not allowed: expected {allowed}"


def validate(data: Any, source: str = "settings") -> dict[str, Any]:
    """Check a settings mapping against SCHEMA; return it merged onto DEFAULTS.

    Raises SettingsError naming the first bad key, the value found and what is allowed.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"{source}: expected a mapping of settings, found {type(data).__name__}"
        )
    import jsonschema  # slow to import (its format checkers); only validation needs it

    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise SettingsError(f"{source}: {_describe(errors[0])}")
    merged = deep_merge(DEFAULTS, data)
    _check_oauth(merged["auth"], source)
    return merged


def _check_oauth(auth: dict[str, Any], source: str) -> None:
    """With kind oauth, the class must be named and its package installed (not imported here)."""
    if auth["kind"] != "oauth":
        return
    if not auth["oauth_class"]:
        raise SettingsError(
            f"{source}: auth.oauth_class is required when auth.kind is oauth "
            "(e.g. oauthenticator.generic.GenericOAuthenticator)"
        )
    import importlib.util

    # the top-level package only: finding a submodule would import (run) its package
    package = auth["oauth_class"].split(".", 1)[0]
    if importlib.util.find_spec(package) is None:
        hint = " (pip install oauthenticator)" if package == "oauthenticator" else ""
        raise SettingsError(
            f"{source}: auth.oauth_class = {auth['oauth_class']} cannot be loaded: "
            f"package {package} is not installed{hint}"
        )


def load(path: str | os.PathLike[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Read and validate a settings file, then apply overrides given as dotted keys.

    `overrides` use double underscores for nesting (`hub__port=8001`); None values are ignored.
    """
    settings_path = Path(path) if path else default_settings_path()
    try:
        text = settings_path.read_text()
    except FileNotFoundError:
        raise SettingsError(f"settings file {settings_path} does not exist") from None
    except OSError as e:
        raise SettingsError(f"settings file {settings_path} cannot be read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise SettingsError(f"{settings_path}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if isinstance(data, dict):
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split("__")
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    break
            else:
                node[leaf] = value
    return validate(data, source=str(settings_path))
