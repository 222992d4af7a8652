"""Start the portal service: `python -m dsml.portal` (the hub runs it as a managed service)."""

from dsml.utils import skip_slow_format_checks

skip_slow_format_checks()

from dsml.portal.app import PortalApp  # noqa: E402 - after the import-time fix above

if __name__ == "__main__":
    PortalApp.launch_instance()
