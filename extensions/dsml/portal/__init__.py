"""The portal service: the platform's own pages and APIs, whatever the authenticator is.

Environments catalog, package requests and platform health, served by the hub-managed service
`portal` at /services/portal/ (`python -m dsml.portal`), with its own database.
"""
