"""The scheduler service: hub-wide Papermill jobs with cron, typed parameters and run history."""
