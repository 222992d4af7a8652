"""Functions that set JupyterHub traits from validated settings; no other logic lives here.

hub_config/jupyterhub_config.py calls `update_all(c, ...)`. Each `update_*` only sets traits
on the config object `c`, so the same settings give the same hub on a laptop and in a pod.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

from tornado.web import RedirectHandler

from dsml import kernels, scopes
from dsml import settings as settings_mod
from dsml.client import APPS, PORTAL, SCHEDULER
from dsml.datadir import ADMIN_TOKEN_SECRET, DataDir
from dsml.hub.apps import NoConfirmClients
from dsml.settings import GROUPS, LAB_GROUPS, platform_root
from dsml.system_accounts import isolated
from dsml.utils import write_atomic

ADMIN_SERVICE = "dsml-admin"
USAGE_READER_SERVICE = "usage-reader"
"""A token-only service whose token app kernels get (DSML_USAGE_TOKEN): it can read the portal's
usage totals, which every signed-in user may read, and nothing that belongs to anyone."""
USAGE_READER_SECRET = "usage-reader-token"
"""Token-only service the `dsml` CLI uses to manage users and groups."""

SCHEDULER_SERVICE = SCHEDULER

PORTAL_SERVICE = PORTAL

APPS_SERVICE = APPS

GROUP_DESCRIPTIONS = {
    "platform-admins": "Runs the platform: users, groups, environments, usage figures.",
    "analysts": "Citizen analysts exploring data in JupyterLab.",
    "data-scientists": "Parameterise, schedule and publish notebooks.",
    "stakeholders": "Open published apps; no JupyterLab server.",
    "newcomers": "Work through the training notebooks.",
}

# the `self` scopes of JupyterHub's default user role, less starting and stopping servers:
# that right comes from the lab-user role, which stakeholders do not get
_USER_SCOPES = [
    "read:users!user",
    "read:users:name!user",
    "read:users:groups!user",
    "users:activity!user",
    "read:users:activity!user",
    "read:servers!user",
    "access:servers!user",
    "tokens!user",
    "read:tokens!user",
    "users:shares!user",
    "read:users:shares!user",
    "read:shares!user",
    # the platform's own services (scheduler, apps, portal) check who asks through the hub
    "access:services",
    f"access:services!service={PORTAL_SERVICE}",
    f"access:services!service={APPS_SERVICE}",
]


def load_settings() -> dict[str, Any]:
    """Read the settings `dsml up` resolved (DSML_SETTINGS_JSON), else the settings file."""
    resolved = os.environ.get("DSML_SETTINGS_JSON")
    if resolved:
        return settings_mod.validate(json.loads(Path(resolved).read_text()), source=resolved)
    return settings_mod.load(os.environ.get("DSML_SETTINGS") or None)


def datadir_for(settings: dict[str, Any]) -> DataDir:
    """The data directory the settings name."""
    return DataDir(settings["data_dir"], settings.get("environments_dir"))


def update_network(c: Any, settings: dict[str, Any], datadir: DataDir) -> None:
    """Public address, internal hub address, and the proxy (started by the hub)."""
    hub = settings["hub"]
    c.JupyterHub.ip = hub["ip"]
    c.JupyterHub.port = hub["port"]
    c.JupyterHub.base_url = hub["base_url"]
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = int(os.environ.get("DSML_HUB_PORT", "8081"))
    c.ConfigurableHTTPProxy.api_url = (
        f"http://127.0.0.1:{int(os.environ.get('DSML_PROXY_API_PORT', '8001'))}"
    )
    c.ConfigurableHTTPProxy.auth_token = datadir.secret("proxy-auth-token")
    c.ConfigurableHTTPProxy.pid_file = str(datadir.hub / "proxy.pid")
    chp = platform_root() / "node_modules" / ".bin" / "configurable-http-proxy"
    if chp.exists():
        c.ConfigurableHTTPProxy.command = [str(chp)]
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True


class WalConnection(sqlite3.Connection):
    """The hub's SQLite connections in WAL mode, as the services' stores (dsml.service.store).

    The hub commits on its event loop on most requests (last activity, OAuth codes, tokens). In
    SQLite's default rollback-journal mode each commit syncs the journal and the database, about
    30 ms on a busy disk: 200 users signing in spent a third of the hub's loop there
    (bench/README.md, "Load"). In WAL mode with synchronous=NORMAL a commit does not sync; a
    crash of the hub loses nothing committed, a power cut at most the last commits, and the
    database stays whole either way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA journal_mode=WAL")
        self.execute("PRAGMA synchronous=NORMAL")


def update_state(c: Any, settings: dict[str, Any], datadir: DataDir) -> None:
    """Database, cookie secret and templates: all state lives in the data dir."""
    c.JupyterHub.db_url = datadir.hub_db_url
    # JupyterHub's own SQLite default plus our connection class (why: WalConnection)
    c.JupyterHub.db_kwargs = {
        "connect_args": {"check_same_thread": False, "factory": WalConnection}
    }
    datadir.secret("jupyterhub_cookie_secret")
    c.JupyterHub.cookie_secret_file = str(datadir.secrets / "jupyterhub_cookie_secret")
    # the platform's look (page.html), shared with the services' pages
    c.JupyterHub.template_paths = [str(Path(__file__).parents[1] / "templates")]
    # admins see on the hub's home page what `dsml up` says when users share one account
    c.JupyterHub.template_vars = {
        "dsml_not_isolated": ""
        if isolated()
        else "Users are not isolated from each other: every server and job runs as the "
        "platform's own account. Run `dsml up` as root for an account per user, or use the "
        "Kubernetes mode."
    }


def update_auth(c: Any, settings: dict[str, Any]) -> None:
    """Password login (nativeauthenticator) by default, or an OAuthenticator class (SSO).

    With SSO, as with passwords, accounts are made by admins (`dsml users add`): only users
    the hub knows may sign in (`allow_existing_users`), unless `auth.oauth_config` says
    otherwise (e.g. `allowed_groups` with `manage_groups`, or `allow_all`).
    """
    auth = settings["auth"]
    if auth["kind"] == "native":
        c.JupyterHub.authenticator_class = "dsml.hub.auth.DsmlAuthenticator"
        c.NativeAuthenticator.minimum_password_length = auth["minimum_password_length"]
        c.NativeAuthenticator.allowed_failed_logins = auth["allowed_failed_logins"]
        c.NativeAuthenticator.seconds_before_next_try = auth["seconds_before_next_try"]
        c.NativeAuthenticator.check_common_password = True
    else:
        from traitlets.utils.importstring import import_item

        from dsml.hub.accounts import with_accounts

        # the class, with system accounts made on add and locked on delete (as root)
        c.JupyterHub.authenticator_class = with_accounts(import_item(auth["oauth_class"]))
        # the class's own section outranks this base-class default (traitlets config order)
        c.Authenticator.allow_existing_users = True
        class_name = auth["oauth_class"].rsplit(".", 1)[-1]
        for key, value in auth["oauth_config"].items():
            setattr(c[class_name], key, value)


def update_spawner(c: Any, settings: dict[str, Any], datadir: DataDir) -> None:
    """One JupyterLab process per user, home under the data dir, curated kernels only."""
    spawner = settings["spawner"]
    root = platform_root()
    c.JupyterHub.spawner_class = "dsml.hub.spawner.DsmlLocalSpawner"
    c.DsmlLocalSpawner.home_dir_template = str(datadir.homes / "{username}")
    # the `dsml check` of servers reads a copy of the settings without secrets
    if os.environ.get("DSML_LAB_SETTINGS_JSON"):
        c.DsmlLocalSpawner.settings_file = os.environ["DSML_LAB_SETTINGS_JSON"]
    c.DsmlLocalSpawner.seed_folders = [str(root / "training"), str(root / "shared_notebooks")]
    c.DsmlLocalSpawner.jupyter_data_dir = str(datadir.jupyter_data)
    c.DsmlLocalSpawner.default_kernel = kernels.kernel_name(spawner["default_environment"])
    c.DsmlLocalSpawner.niceness = settings["accounts"]["niceness"]
    c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    c.Spawner.default_url = spawner["default_url"]
    # JupyterLab's Notebook Jobs and `dsml run` call the scheduler with the server's own token
    c.Spawner.server_token_scopes = list(scopes.SERVER_TOKEN_SCOPES)
    # `dsml run` and the JupyterLab scheduler reach the services through the public URL
    c.Spawner.environment = {"DSML_HUB_URL": os.environ.get("DSML_PUBLIC_URL", "")}
    c.Spawner.start_timeout = spawner["start_timeout_seconds"]
    c.Spawner.http_timeout = spawner["http_timeout_seconds"]


def update_accounts(c: Any, settings: dict[str, Any], datadir: DataDir) -> None:
    """A system account per user when the hub runs as root (read by authenticator and spawner)."""
    c.SystemAccounts.prefix = settings["accounts"]["prefix"]
    c.SystemAccounts.homes = str(datadir.homes)


def update_roles(c: Any, settings: dict[str, Any]) -> None:
    """The platform's groups and roles: stakeholders get no server; admins get admin."""
    c.JupyterHub.load_groups = {
        name: {"properties": {"description": GROUP_DESCRIPTIONS[name]}} for name in GROUPS
    }

    c.JupyterHub.custom_scopes = scopes.CUSTOM_SCOPES
    c.JupyterHub.load_roles = [
        {
            "name": "user",
            "description": "Every user: see and use their own servers, manage their tokens.",
            "scopes": _USER_SCOPES,
        },
        {
            "name": "lab-user",
            "description": "May start and stop their own JupyterLab server.",
            "scopes": ["servers!user", "delete:servers!user", *scopes.LAB_SCOPES],
            "groups": list(LAB_GROUPS),
        },
        {"name": "admin", "groups": ["platform-admins"]},
        {
            "name": USAGE_READER_SERVICE,
            "description": "App kernels' token: read the portal's usage totals (a leaders' app).",
            "scopes": [f"access:services!service={PORTAL_SERVICE}"],
            "services": [USAGE_READER_SERVICE],
        },
        {
            "name": "platform-admin",
            "description": "The platform's own admin rights: every job, every package request.",
            "scopes": scopes.ADMIN_SCOPES,
            "groups": ["platform-admins"],
        },
        {
            "name": ADMIN_SERVICE,
            "description": "The dsml CLI: create users, set passwords, manage group membership, "
            "list and answer package requests, read the health detail, manage every app.",
            "scopes": [
                "admin:users",
                "admin:groups",
                "list:users",
                "list:groups",
                "read:roles",
                f"access:services!service={PORTAL_SERVICE}",
                f"access:services!service={APPS_SERVICE}",
                scopes.ENV_REQUESTS_ADMIN,
                scopes.HEALTH_READ,
                scopes.APPS_ADMIN,
            ],
            "services": [ADMIN_SERVICE],
        },
        {
            "name": SCHEDULER_SERVICE,
            "description": "The scheduler service: it reads who asks, and whether a job's owner "
            "still exists and holds a role that lets them run jobs (users' and groups' roles).",
            "scopes": ["read:users:groups", "read:roles:users", "read:roles:groups"],
            "services": [SCHEDULER_SERVICE],
        },
        {
            "name": APPS_SERVICE,
            "description": "The apps service: it starts and stops app servers (app-<slug>) of "
            "their owners, shares them with users and groups (so it must hold the access it "
            "grants), checks that share targets exist and reads viewers' groups.",
            "scopes": [
                "servers",
                "delete:servers",
                "read:servers",
                "access:servers",
                "shares",
                "read:shares",
                "list:users",
                "read:users:name",
                "read:users:groups",
                "read:groups:name",
                # always-on apps: the service reports them active so the idle culler skips them
                "users:activity",
            ],
            "services": [APPS_SERVICE],
        },
        {
            "name": PORTAL_SERVICE,
            "description": "The portal service: it reads the proxy's routes and the services "
            "for the health check, the users (activity, servers) for the usage figures, and "
            "every job, run and app through the scheduler's and apps service's APIs (their "
            "read-only scopes: it lists, it changes nothing).",
            "scopes": [
                "proxy",
                "list:services",
                "read:services",
                "list:users",
                "read:users",
                "read:servers",
                f"access:services!service={SCHEDULER_SERVICE}",
                f"access:services!service={APPS_SERVICE}",
                scopes.JOBS_READ,
                scopes.APPS_READ,
            ],
            "services": [PORTAL_SERVICE],
        },
    ]
    c.JupyterHub.load_roles.append(
        {
            "name": "scheduler-run-tokens",
            "description": "The scheduler gives each run of a job a token of the job's owner, "
            "expiring with the run; only for members of the groups that may run jobs.",
            # not hub-wide: a stakeholder (or anyone outside these groups) gets no run token
            "scopes": [f"tokens!group={group}" for group in LAB_GROUPS],
            "services": [SCHEDULER_SERVICE],
        }
    )
    if settings["culler"]["enabled"]:
        c.JupyterHub.load_roles.append(
            {
                "name": "idle-culler",
                "description": "Stops servers that have been idle too long.",
                "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
                "services": ["idle-culler"],
            }
        )


def scheduler_config_files(
    settings: dict[str, Any], datadir: DataDir, write: bool = True
) -> list[str]:
    """The scheduler's config files: the platform's settings as traits, then the admin's own.

    The settings are written as a JSON config file under the data dir; a `config_file` named
    in the settings is loaded after it, so what an admin sets there wins. With `write` False
    only the paths are returned (`python -m dsml.hub.kubernetes` names them; the hub pod
    writes them).
    """
    from traitlets.config import Config

    scheduler = settings["scheduler"]
    # the roles that let a job's owner run jobs, read from the roles this config defines
    roles = Config()
    update_roles(roles, settings)
    run_roles = [
        role["name"]
        for role in roles.JupyterHub.load_roles
        if {scopes.JOBS_RUN, scopes.JOBS_ADMIN} & set(role.get("scopes") or [])
    ]
    config = {
        "SchedulerApp": {
            "data_dir": str(datadir.root / "scheduler"),
            "environments": list(settings["environments"]),
            "max_output_bytes": scheduler["max_output_bytes"],
            "public_url": os.environ.get("DSML_PUBLIC_URL", ""),
            "max_jobs_per_user": scheduler["max_jobs_per_user"],
            "max_retries": scheduler["max_retries"],
            "max_deadline_seconds": scheduler["max_deadline_seconds"],
        },
        "RunManager": {
            "max_queued_runs_per_user": scheduler["max_queued_runs_per_user"],
            "default_deadline_seconds": scheduler["default_deadline_seconds"],
            "max_output_bytes_per_user": scheduler["max_output_bytes_per_user"],
        },
        "Inputs": {
            "max_input_files": scheduler["max_input_files"],
            "max_input_bytes": scheduler["max_input_bytes"],
        },
        "HubOwnerRights": {
            "run_roles": run_roles,
            "cache_seconds": scheduler["rights_cache_seconds"],
        },
        "Executor": {"capacity": scheduler["capacity"]},
        "LocalExecutor": {
            "warm_workers": scheduler["warm_workers"],
            "memory_limit_bytes": scheduler["job_memory_limit_bytes"],
            "niceness": settings["accounts"]["niceness"],
            # as root each run executes as its owner's system account
            "account_prefix": settings["accounts"]["prefix"] if isolated() else "",
        },
        "Notifier": {
            "smtp_host": scheduler["smtp_host"],
            "smtp_port": scheduler["smtp_port"],
            "smtp_from": scheduler["smtp_from"],
            "webhook_allow": list(scheduler["webhook_allow"]),
            "max_emails": scheduler["max_notify_emails"],
            "email_domains": list(scheduler["email_domains"]),
        },
    }
    path = datadir.root / "scheduler" / "settings-config.json"
    if write:
        write_atomic(path, json.dumps(config, indent=1) + "\n", mode=0o600)
    files = [str(path)]
    if scheduler.get("config_file"):
        files.append(str(Path(scheduler["config_file"]).resolve()))
    return files


def update_services(c: Any, settings: dict[str, Any], datadir: DataDir) -> None:
    """Hub-managed services: the CLI's token-only service, scheduler, portal, idle culler."""
    services: list[dict[str, Any]] = [
        {"name": ADMIN_SERVICE, "api_token": datadir.secret(ADMIN_TOKEN_SECRET)},
        {"name": USAGE_READER_SERVICE, "api_token": datadir.secret(USAGE_READER_SECRET)},
    ]
    services.append(scheduler_service(settings, datadir))
    services.append(portal_service(settings, datadir))
    services.append(apps_service(settings, datadir))
    culler = settings["culler"]
    # the hub reads each route's last use from the proxy every minute (JupyterHub: 5): the
    # culler judges by the hub's record, and a person back at an idle server after almost the
    # timeout was culled while working when that record lagged by up to 5 minutes
    c.JupyterHub.last_activity_interval = ACTIVITY_FROM_PROXY_SECONDS
    if culler["enabled"]:
        services.append(
            {
                "name": "idle-culler",
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={culler['timeout_seconds']}",
                    f"--cull-every={culler['every_seconds']}",
                    f"--max-age={culler['max_age_seconds']}",
                ],
            }
        )
    c.JupyterHub.services = services
    c.JupyterHub.trust_user_provided_tokens = service_tokens_are_random(services)
    # the hub applies these over its own settings: services and app servers skip the consent
    # page (why app servers may: dsml.hub.apps)
    c.JupyterHub.tornado_settings = {
        "oauth_no_confirm_list": NoConfirmClients(
            f"service-{s['name']}" for s in services if s.get("oauth_no_confirm")
        )
    }


ACTIVITY_FROM_PROXY_SECONDS = 60
"""How often the hub reads the servers' last use from the proxy (`last_activity_interval`)."""

MIN_TRUSTED_TOKEN_LENGTH = 32
"""Service tokens at least this long are taken as random (`service_tokens_are_random`)."""


def service_tokens_are_random(services: list[dict[str, Any]]) -> bool:
    """Whether the hub may check the services' tokens with one hash (trust_user_provided_tokens).

    Ours are 32 random bytes (DataDir.secret), z2jh's 64 random hex digits: a single hash
    suffices, not the 16384 rounds meant for tokens a person may have typed, which the hub
    otherwise spends on its event loop for every request a service makes. A shorter token
    (set by hand) keeps the rounds for every token.
    """
    return all(
        len(s["api_token"]) >= MIN_TRUSTED_TOKEN_LENGTH for s in services if s.get("api_token")
    )


def _port(variable: str) -> int:
    """The port `dsml up` chose for a service (in `variable`), else any free loopback port."""
    if os.environ.get(variable):
        return int(os.environ[variable])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_environment(name: str, **extra: str) -> dict[str, str]:
    """A managed service's environment: where the platform is, and its database URL if set.

    A PostgreSQL URL (`DSML_<NAME>_DB_URL`) holds a password: it goes through the environment,
    never the command line, where every account could read it.
    """
    environment = {"DSML_ROOT": str(platform_root()), **extra}
    variable = f"DSML_{name.upper()}_DB_URL"
    if os.environ.get(variable):
        environment[variable] = os.environ[variable]
    return environment


def scheduler_service(
    settings: dict[str, Any], datadir: DataDir, write: bool = True
) -> dict[str, Any]:
    """The scheduler: hub-wide notebook jobs, configured through its config files."""
    environment = service_environment(SCHEDULER_SERVICE, JUPYTER_PATH=str(datadir.jupyter_data))
    return {
        "name": SCHEDULER_SERVICE,
        "url": f"http://127.0.0.1:{_port('DSML_SCHEDULER_PORT')}",
        "command": [
            sys.executable,
            "-m",
            "dsml.scheduler",
            *(
                f"--config-file={path}"
                for path in scheduler_config_files(settings, datadir, write=write)
            ),
        ],
        "oauth_no_confirm": True,
        # the page's cookie carries what the service needs to know of its user
        "oauth_client_allowed_scopes": [
            "read:users:groups!user",
            scopes.JOBS_RUN,
            scopes.JOBS_ADMIN,
        ],
        "display": True,
        "environment": environment,
    }


def portal_service(settings: dict[str, Any], datadir: DataDir) -> dict[str, Any]:
    """The portal: the platform's own pages and APIs (environments, package requests, health)."""
    environment = service_environment(PORTAL_SERVICE)
    return {
        "name": PORTAL_SERVICE,
        "url": f"http://127.0.0.1:{_port('DSML_PORTAL_PORT')}",
        "command": [
            sys.executable,
            "-m",
            "dsml.portal",
            f"--PortalApp.data_dir={datadir.root / 'portal'}",
            f"--PortalApp.platform_data_dir={datadir.root}",
            f"--PortalApp.environments_dir={datadir.environments}",
            f"--PortalApp.public_url={os.environ.get('DSML_PUBLIC_URL', '')}",
            f"--PortalApp.training_dir={platform_root() / 'training'}",
        ],
        "oauth_no_confirm": True,
        # an admin's page session carries the admin scopes the portal checks, and admin-ui
        # (which only opens the hub's admin page) so its pages show the hub's Admin link
        "oauth_client_allowed_scopes": [
            "read:users:name!user",
            "admin-ui",
            scopes.ENV_REQUESTS_ADMIN,
            scopes.HEALTH_READ,
            scopes.USAGE_ADMIN,
            # the home page asks the scheduler and the apps service, and the hub for the
            # server's state, with the person's own session token: they see only what is theirs
            "read:users:groups!user",
            "read:servers!user",
            f"access:services!service={SCHEDULER_SERVICE}",
            f"access:services!service={APPS_SERVICE}",
            # the navigation offers JupyterLab and Jobs to those who may run them
            *scopes.LAB_SCOPES,
        ],
        # the nav bar links its pages (Environments); no entry in the Services menu
        "display": False,
        "environment": environment,
    }


def apps_config_file(settings: dict[str, Any], datadir: DataDir, write: bool = True) -> str:
    """The apps service's settings as a JSON config file (like the scheduler's)."""
    apps = settings["apps"]
    config = {
        "AppsApp": {
            "data_dir": str(datadir.root / APPS_SERVICE),
            "environments": list(settings["environments"]),
            "public_url": os.environ.get("DSML_PUBLIC_URL", ""),
            "max_files": apps["max_files"],
            "max_bundle_bytes": apps["max_bundle_bytes"],
            "declared_apps": list(apps["declared"]),
            "root_dir": str(platform_root()),
        }
    }
    path = datadir.root / APPS_SERVICE / "settings-config.json"
    if write:
        write_atomic(path, json.dumps(config, indent=1) + "\n", mode=0o600)
    return str(path)


def apps_service(settings: dict[str, Any], datadir: DataDir, write: bool = True) -> dict[str, Any]:
    """The apps service: publish, version, share and serve notebooks as Voila apps."""
    environment = service_environment(APPS_SERVICE, JUPYTER_PATH=str(datadir.jupyter_data))
    return {
        "name": APPS_SERVICE,
        "url": f"http://127.0.0.1:{_port('DSML_APPS_PORT')}",
        "command": [
            sys.executable,
            "-m",
            "dsml.apps",
            f"--config-file={apps_config_file(settings, datadir, write=write)}",
        ],
        "oauth_no_confirm": True,
        # the page's cookie says who the viewer is and which groups they are in (the gallery
        # and the stable link check shares by group), and whether they administer apps
        "oauth_client_allowed_scopes": [
            "read:users:name!user",
            "read:users:groups!user",
            "admin-ui",
            scopes.APPS_ADMIN,
            # the navigation offers JupyterLab and Jobs to those who may run them
            *scopes.LAB_SCOPES,
        ],
        "display": False,
        "environment": environment,
    }


def update_apps(c: Any, settings: dict[str, Any], datadir: DataDir) -> None:
    """Apps are named servers `app-<slug>` of their owners, served by the apps service."""
    c.JupyterHub.allow_named_servers = True
    # the spawner runs only the app server for named servers (dsml.hub.spawner), and the apps
    # service starts them: no limit per user beyond the apps they publish
    c.JupyterHub.named_server_limit_per_user = 0
    services = {s["name"]: s for s in c.JupyterHub.services}
    url = services[APPS_SERVICE]["url"]
    c.DsmlLocalSpawner.apps_url = f"{url}/services/{APPS_SERVICE}/"
    c.DsmlLocalSpawner.preheated_kernels = str(settings["apps"]["preheated_kernels"])
    # an app's kernel runs the owner's code for every viewer, so it holds no token of the owner;
    # it gets this one, which reads the usage totals any signed-in user may read (a leaders' app)
    c.DsmlLocalSpawner.usage_token = datadir.secret(USAGE_READER_SECRET)


def update_pages(c: Any, settings: dict[str, Any]) -> None:
    """Old hub URLs of pages that moved to the portal redirect to their new place."""
    base = settings["hub"]["base_url"].rstrip("/") + "/"
    c.JupyterHub.extra_handlers = [
        (r"/environments", RedirectHandler, {"url": f"{base}services/{PORTAL}/environments"})
    ]


def default_url(handler: Any) -> str:
    """Everyone lands on the portal's home: their server, jobs, apps and training per role.

    A stakeholder's home shows the apps shared with them (they get no JupyterLab server).
    """
    base = handler.hub.base_url
    return base.rstrip("/").rsplit("/", 1)[0] + f"/services/{PORTAL_SERVICE}/"


def update_all(c: Any, settings: dict[str, Any]) -> None:
    """Apply every update_* function: the whole hub configuration."""
    datadir = datadir_for(settings)
    datadir.ensure()
    update_network(c, settings, datadir)
    update_state(c, settings, datadir)
    update_auth(c, settings)
    update_accounts(c, settings, datadir)
    update_spawner(c, settings, datadir)
    update_roles(c, settings)
    update_services(c, settings, datadir)
    update_apps(c, settings, datadir)
    update_pages(c, settings)
    c.JupyterHub.default_url = default_url
