"""Errors the platform raises on purpose; each message says what was found and what is allowed."""


class DsmlError(Exception):
    """Base class: an error whose message is fit to show a user on one line."""

    exit_code = 1


class SettingsError(DsmlError):
    """The settings file (or a flag that overrides it) holds a value that is not allowed."""

    exit_code = 2


class DataDirError(DsmlError):
    """The data directory cannot be created or written."""

    exit_code = 2


class PortInUseError(DsmlError):
    """The address the hub should listen on is taken by another process."""

    exit_code = 2


class EnvironmentSpecError(DsmlError):
    """An environment folder under images/ is missing a file or holds an invalid one."""

    exit_code = 2


class EnvironmentBuildError(DsmlError):
    """Turning an environment's lock into a virtualenv failed."""


class HubError(DsmlError):
    """The hub answered an API call with an error, or could not be reached."""
