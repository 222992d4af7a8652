"""Start the scheduler service: `python -m dsml.scheduler` (the hub runs it as a service)."""

from dsml.utils import skip_slow_format_checks

skip_slow_format_checks()

from dsml.scheduler.app import main  # noqa: E402 - after the import-time fix above

if __name__ == "__main__":
    main()
