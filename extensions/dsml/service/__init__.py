"""What every hub-managed service of the platform shares: app, handlers, errors, database.

A service package (scheduler, portal, apps) subclasses `ServiceApp` (app.py), writes its
handlers on `APIHandler` (handlers.py), raises the errors of exceptions.py and keeps its
database behind a `SQLStore` (store.py). Nothing here is loaded by the hub or user servers.
"""
