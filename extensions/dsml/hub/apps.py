"""The hub's side of apps: which OAuth clients skip the consent page.

JupyterHub asks a user "Authorize access?" before a server that is not theirs learns who they
are. For a JupyterLab server shared with a colleague that question matters: the server runs
its owner's code, which could act on what the token allows. An app server is different, and
that is why apps skip it: it runs only `dsml.apps.server` (the spawner runs nothing else for a
server named `app-*`, whatever the owner asks), which serves the published notebook through
Voila with the viewer's messages filtered, and the token it gets only identifies the viewer
(`access:servers!server=<owner>/app-<slug>` plus the identity). A stakeholder opening a link
must not face a question about OAuth clients.

The hub applies `c.JupyterHub.tornado_settings` over its own settings, so
`oauth_no_confirm_list` is replaced by `NoConfirmClients`: a set that holds the services'
client ids (as the hub's own list does) and also answers True for a client id that belongs to
a named server `app-*` in the hub's database. The lookup is by the spawner's exact client id,
not by a pattern: a user named `bob-app-x` does not make his JupyterLab server skip it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dsml.client import APP_SERVER_PREFIX


def is_app_server(name: str) -> bool:
    """Whether a server name is an app server's."""
    return name.startswith(APP_SERVER_PREFIX)


class NoConfirmClients(set):
    """The OAuth clients that need no consent: services, and app servers (looked up)."""

    def __init__(self, client_ids: Iterable[str] = ()):
        super().__init__(client_ids)

    def __contains__(self, client_id: object) -> bool:
        if super().__contains__(client_id):
            return True
        return isinstance(client_id, str) and _is_app_client(client_id)


def _is_app_client(client_id: str) -> bool:
    from jupyterhub import orm
    from jupyterhub.app import JupyterHub

    if not client_id.startswith("jupyterhub-user-") or not JupyterHub.initialized():
        return False
    db: Any = JupyterHub.instance().db
    spawner = db.query(orm.Spawner).filter_by(oauth_client_id=client_id).first()
    return spawner is not None and is_app_server(spawner.name or "")
