"""Curated environments: read their spec and lock from images/, build them as virtualenvs."""

from dsml.environments.spec import Environment, find_environment, list_environments

__all__ = ["Environment", "find_environment", "list_environments"]
