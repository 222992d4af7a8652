"""The apps service's HTTP handlers: one module per resource, each ending in `default_handlers`."""
