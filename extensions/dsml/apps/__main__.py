"""Start the apps service: `python -m dsml.apps` (the hub runs it as a managed service)."""

from dsml.utils import skip_slow_format_checks

skip_slow_format_checks()

from dsml.apps.app import AppsApp  # noqa: E402 - after the import-time fix above

if __name__ == "__main__":
    AppsApp.launch_instance()
