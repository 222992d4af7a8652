"""Start the scheduler service: `python -m dsml.scheduler` (the hub runs it as a service)."""

from dsml.scheduler.app import main

if __name__ == "__main__":
    main()
