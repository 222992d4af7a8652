"""Run the `dsml` command line as `python -m dsml`."""

from dsml.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
