"""The hub on Kubernetes: what dsml-platform adds to Zero to JupyterHub's own configuration.

In the hub pod, z2jh's `jupyterhub_config.py` runs first: it sets the hub's addresses, the
proxy API, `KubeSpawner`, the database, the culler service and the `hub.services` /
`hub.loadRoles` values. Then it executes `jupyterhub_config.d/*.py`, where ours calls
`configure(c)`. That function adds the platform's pieces and never overwrites what z2jh set
(hub IP and URLs, proxy API, spawner class, culler): groups, roles and custom scopes, our
services (completed at run time: config files, database URLs from the environment), the
spawner's traits (one profile per curated environment, app servers, no JupyterLab for
stakeholders, unprivileged pods, training seeded into the home on first start).

The `hub.services` and `hub.loadRoles` values of the chart come from `helm_values()`, built by
the same functions (`dsml.hub.config`) that configure the services on one machine, so both
worlds run the same services with the same scopes (`python -m dsml.hub.kubernetes` prints
them).

The hub pod reads two files from the `dsml-settings` Secret: `settings.yaml` (the
same settings file as locally) and `dsml-values.json` (the chart's `dsml:` values).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsml import scopes
from dsml import settings as settings_mod
from dsml.client import APP_SERVER_PREFIX, APPS, PORTAL, SCHEDULER
from dsml.datadir import DataDir
from dsml.exceptions import SettingsError
from dsml.hub import config as hubconfig
from dsml.settings import LAB_GROUPS
from dsml.utils import quantity_bytes, write_atomic

SETTINGS_FILE = "/usr/local/etc/dsml/settings.yaml"
"""The settings file in the hub pod (key settings.yaml of the dsml settings Secret)."""

VALUES_FILE = "/usr/local/etc/dsml/dsml-values.json"
"""The chart's `dsml:` values in the hub pod (key dsml-values.json of the same Secret)."""

IMAGE_ROOT = "/srv/dsml"
"""DSML_ROOT in the hub image: hub_config/, images/, training/ and shared_notebooks/."""

DATA_DIR = "/srv/jupyterhub/dsml"
"""The services' state on the hub's PVC (z2jh mounts it at /srv/jupyterhub)."""

PYTHON = "python3"
"""The hub image's interpreter, as z2jh's culler service names it."""

HUB_SERVICE = "hub"
"""z2jh's hub Service name with the default fullnameOverride (""); the pod asks z2jh's helper."""

PROXY_PUBLIC_SERVICE = "proxy-public"
"""z2jh's public proxy Service name with the default fullnameOverride."""

SERVICE_PORTS = {SCHEDULER: 8790, APPS: 8791, PORTAL: 8792}
"""Fixed ports of our services in the hub pod: the chart opens them (hub.service.extraPorts)."""

SERVICE_APP_CLASSES = {SCHEDULER: "SchedulerApp", APPS: "AppsApp", PORTAL: "PortalApp"}
"""The traitlets Application of each service (its `service_url` is where it listens)."""

TOKEN_ONLY_SERVICES = (hubconfig.ADMIN_SERVICE, hubconfig.USAGE_READER_SERVICE)
"""Services without a process: their tokens come from z2jh's hub Secret."""

HOME = "/home/jovyan"
"""Home folder of the docker-stacks images (z2jh's singleuser.storage.homeMountPath)."""

ENV_VAR_PREFIX_DB = re.compile(r"^DSML_[A-Z_]+_DB_URL$")

DEFAULT_VALUES: dict[str, Any] = {
    "environments": {},
    "gpu": {"enabled": False, "resources": {"nvidia.com/gpu": 1}, "environment": "datascience"},
    "apps": {
        "resources": {
            "cpu": {"request": "0.1", "limit": "1"},
            "memory": {"request": "256Mi", "limit": "1Gi"},
        }
    },
    "postgresql": {"enabled": False, "url": {"secretName": "", "key": "url"}},
    "prometheus": {"scrape": True},
}
"""What the hub assumes for every `dsml:` key the values leave out (the chart sets them all)."""


# detection and inputs


def on_z2jh(c: Any) -> bool:
    """Whether this config is z2jh's: its `z2jh` helpers are loaded or KubeSpawner is set.

    z2jh's jupyterhub_config.py imports its helper module `z2jh` (get_config, get_name, ...)
    and sets `c.JupyterHub.spawner_class` to KubeSpawner before it loads jupyterhub_config.d;
    either one is enough, so a renamed helper or a KubeSpawner subclass still counts.
    """
    helpers = sys.modules.get("z2jh")
    if helpers is not None and callable(getattr(helpers, "get_config", None)):
        return True
    spawner = c.JupyterHub.get("spawner_class") if "JupyterHub" in c else None
    if isinstance(spawner, str):
        return spawner.split(".", 1)[0] == "kubespawner"
    if isinstance(spawner, type):
        return any(k.__module__.split(".", 1)[0] == "kubespawner" for k in spawner.__mro__)
    return False


def load_values(path: str | os.PathLike[str] = VALUES_FILE) -> dict[str, Any]:
    """The chart's `dsml:` values (JSON), merged onto DEFAULT_VALUES."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SettingsError(
            f"{path} does not exist: the hub pod mounts the dsml settings Secret there"
        ) from None
    except ValueError as e:
        raise SettingsError(f"{path} is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise SettingsError(
            f"{path}: expected a mapping of dsml values, found {type(data).__name__}"
        )
    return settings_mod.deep_merge(DEFAULT_VALUES, data)


def load_settings(path: str | os.PathLike[str] = SETTINGS_FILE) -> dict[str, Any]:
    """The platform settings in the hub pod: DSML_SETTINGS if set, else the mounted file."""
    return settings_mod.load(os.environ.get("DSML_SETTINGS") or path)


def image_ref(image: dict[str, Any]) -> str:
    """`name@digest` when the values pin a digest, else `name:tag`."""
    name = image.get("name") or ""
    if not name:
        raise SettingsError("an environment image has no name: set dsml.environments.<env>.image")
    if image.get("digest"):
        return f"{name}@{image['digest']}"
    if not image.get("tag"):
        raise SettingsError(f"image {name} has neither tag nor digest: set one of them")
    return f"{name}:{image['tag']}"


def quantity_cpu(value: str | int | float) -> float:
    """A Kubernetes CPU quantity ('500m', '0.5', 2) in cores."""
    text = str(value)
    try:
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise SettingsError(
            f"cpu {value!r} is not a quantity: use cores ('0.5') or '500m'"
        ) from None


def _resources(resources: dict[str, Any]) -> dict[str, Any]:
    """KubeSpawner's guarantee/limit traits for {cpu: {request, limit}, memory: {...}}."""
    traits: dict[str, Any] = {}
    cpu = resources.get("cpu") or {}
    memory = resources.get("memory") or {}
    if cpu.get("request") not in (None, ""):
        traits["cpu_guarantee"] = quantity_cpu(cpu["request"])
    if cpu.get("limit") not in (None, ""):
        traits["cpu_limit"] = quantity_cpu(cpu["limit"])
    if memory.get("request") not in (None, ""):
        traits["mem_guarantee"] = quantity_bytes(memory["request"])
    if memory.get("limit") not in (None, ""):
        traits["mem_limit"] = quantity_bytes(memory["limit"])
    return traits


def _environment(values: dict[str, Any], name: str) -> dict[str, Any]:
    """The values of one curated environment, or a one-line error naming the known ones."""
    environments = values["environments"]
    if name not in environments:
        known = ", ".join(sorted(environments)) or "none"
        raise SettingsError(
            f"environment {name!r} has no image in dsml.environments; known: {known}"
        )
    return environments[name]


def environment_image(values: dict[str, Any], name: str, version: str | None = None) -> str:
    """The image of an environment: the current one, or a pinned version's from `versions`.

    A version the map does not list runs on `<name>:<version>` (the tag the image build
    gives each lock), as the scheduler's executor does.
    """
    env = _environment(values, name)
    image = env.get("image") or {}
    if not version or version == image.get("tag"):
        return image_ref(image)
    versions = env.get("versions") or {}
    if version in versions:
        return versions[version]
    return f"{image.get('name')}:{version}"


# services and roles


@contextlib.contextmanager
def _image_environ() -> Iterator[None]:
    """The process environment as it is in the hub image, for building the chart's values.

    The service builders read DSML_ROOT and database URLs from the environment: the values
    must name the image's paths and never a password that happens to be set here.
    """
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if ENV_VAR_PREFIX_DB.match(key) or key in {"DSML_PUBLIC_URL"}:
                del os.environ[key]
            elif key.startswith("DSML_") and key.endswith("_PORT"):
                del os.environ[key]
        os.environ["DSML_ROOT"] = IMAGE_ROOT
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _k8s_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as the shared builders should see them on z2jh: the culler is z2jh's."""
    out = copy.deepcopy(settings)
    out["culler"]["enabled"] = False
    return out


def services(
    settings: dict[str, Any],
    datadir: DataDir,
    hub_host: str = HUB_SERVICE,
    write: bool = True,
) -> list[dict[str, Any]]:
    """Our hub-managed services on z2jh, from the same builders as on one machine.

    The differences: the image's python, a fixed port each (the chart opens them on the hub
    Service), listening on every address of the pod, and a URL through the hub Service so
    the proxy pod (and the hub's own health check) reach them.
    """
    s = _k8s_settings(settings)
    built = [
        hubconfig.scheduler_service(s, datadir, write=write),
        hubconfig.portal_service(s, datadir),
        hubconfig.apps_service(s, datadir, write=write),
    ]
    out: list[dict[str, Any]] = [{"name": name} for name in TOKEN_ONLY_SERVICES]
    for service in built:
        name = service["name"]
        port = SERVICE_PORTS[name]
        app_class = SERVICE_APP_CLASSES[name]
        command = [PYTHON, *service["command"][1:]]
        command.append(f"--{app_class}.service_url=http://0.0.0.0:{port}")
        if name == SCHEDULER:
            command.append(
                f"--SchedulerApp.worker_service_url=http://{hub_host}:{port}/services/{name}/"
            )
            command.append(f"--config-file={datadir.root / name / 'kubernetes-config.json'}")
        service = {**service, "url": f"http://{hub_host}:{port}", "command": command}
        out.append(service)
    return out


def roles(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Our roles (the same as on one machine, less the local culler's: z2jh runs the culler)."""
    from traitlets.config import Config

    scratch = Config()
    hubconfig.update_roles(scratch, _k8s_settings(settings))
    return list(scratch.JupyterHub.load_roles)


def _camel(name: str) -> str:
    """snake_case -> camelCase: z2jh's values spell service keys so (api_token -> apiToken)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def helm_values(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """`hub.services` and `hub.loadRoles` for z2jh 4.4's values: dicts keyed by name.

    Built in the hub image's environment (its paths, no database URLs); the tokens are not
    here: z2jh generates one per service into its hub Secret. The hub pod completes these
    services at start (`configure`), so a value edited by hand cannot drift from the code.
    """
    with _image_environ():
        if settings is None:
            settings = settings_mod.validate({"data_dir": DATA_DIR})
        datadir = hubconfig.datadir_for(settings)
        built = services(settings, datadir, write=False)
        role_list = roles(settings)
    service_values: dict[str, Any] = {}
    for service in built:
        entry = {k: v for k, v in service.items() if k not in {"name", "api_token"}}
        service_values[service["name"]] = entry
    role_values = {
        role["name"]: {k: v for k, v in role.items() if k != "name"} for role in role_list
    }
    return {"hub": {"services": service_values, "loadRoles": role_values}}


# the spawner


def lab_profiles(values: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One KubeSpawner profile per curated environment (the default one first), and the GPU one."""
    from dsml.environments import find_environment

    names = list(settings["environments"])
    default = settings["spawner"]["default_environment"]
    names.sort(key=lambda name: name != default)
    profiles = []
    for name in names:
        env_values = _environment(values, name)
        try:
            spec = find_environment(name)
            display, description = spec.display_name, spec.description
        except Exception:  # noqa: BLE001 - an image-only environment still gets a profile
            display, description = name, ""
        override = {
            "image": environment_image(values, name),
            **_resources(env_values.get("resources") or {}),
            "environment": {"DSML_ENVIRONMENT": name},
        }
        profiles.append(
            {
                "display_name": display,
                "slug": name,
                "description": description,
                "default": name == default,
                "kubespawner_override": override,
            }
        )
    gpu = values["gpu"]
    if gpu.get("enabled"):
        name = gpu.get("environment") or default
        env_values = _environment(values, name)
        limits = {k: str(v) for k, v in (gpu.get("resources") or {}).items()}
        profiles.append(
            {
                "display_name": f"{name} with GPU",
                "slug": f"{name}-gpu",
                "description": f"The {name} environment on a node with "
                + ", ".join(f"{v} {k}" for k, v in limits.items()),
                "kubespawner_override": {
                    "image": environment_image(values, name),
                    **_resources(env_values.get("resources") or {}),
                    "extra_resource_limits": limits,
                    "extra_resource_guarantees": limits,
                    "environment": {"DSML_ENVIRONMENT": name},
                },
            }
        )
    return profiles


def app_profile(
    values: dict[str, Any],
    settings: dict[str, Any],
    slug: str,
    user_options: dict[str, Any],
    apps_url: str,
    usage_token: str = "",
) -> dict[str, Any]:
    """The one profile of an app server: its environment's image, small resources, Voila only.

    The apps service names the app's environment and pinned version in the start request's
    body (`environment`, `environment_version`); without them the default environment runs.
    Only curated environments are accepted, whoever starts the server.
    """
    environment = user_options.get("environment") or settings["spawner"]["default_environment"]
    if environment not in settings["environments"]:
        raise ValueError(
            f"app {slug}: environment {environment!r} is not curated; "
            f"allowed: {', '.join(settings['environments'])}"
        )
    version = user_options.get("environment_version") or None
    env = {
        "DSML_ENVIRONMENT": environment,
        "DSML_APPS_URL": apps_url,
        "DSML_APP_SLUG": slug,
    }
    if usage_token:
        env["DSML_USAGE_TOKEN"] = usage_token
    return {
        "display_name": f"app {slug}",
        "slug": f"app-{environment}",
        "default": True,
        "kubespawner_override": {
            "image": environment_image(values, environment, version),
            **_resources(values["apps"]["resources"]),
            "cmd": [PYTHON, "-m", "dsml.apps.server"],
            "args": [f"--pool-size={settings['apps']['preheated_kernels']}"],
            "environment": env,
            # an app server reads its bundle from the apps service: no home, no PVC
            "volumes": [],
            "volume_mounts": [],
            "storage_pvc_ensure": False,
            "init_containers": [],
        },
    }


def _group_names(user: Any) -> set[str]:
    return {getattr(group, "name", group) for group in (getattr(user, "groups", None) or [])}


def may_use_lab(user: Any) -> bool:
    """Whether a user may run JupyterLab: a member of a lab group, or an admin."""
    return bool(getattr(user, "admin", False)) or bool(_group_names(user) & set(LAB_GROUPS))


def make_profile_list(
    values: dict[str, Any], settings: dict[str, Any], apps_url: str, usage_token: str = ""
) -> Any:
    """KubeSpawner's profile_list callable: apps get their app profile, stakeholders nothing."""

    def profile_list(spawner: Any) -> list[dict[str, Any]]:
        name = spawner.name or ""
        if name.startswith(APP_SERVER_PREFIX):
            slug = name[len(APP_SERVER_PREFIX) :]
            options = spawner.user_options or {}
            return [app_profile(values, settings, slug, options, apps_url, usage_token)]
        if not may_use_lab(spawner.user):
            return []
        return lab_profiles(values, settings)

    return profile_list


def refuse_other_servers(spawner: Any) -> None:
    """pre_spawn_hook: named servers are apps only; JupyterLab only for the lab groups."""
    name = spawner.name or ""
    if name.startswith(APP_SERVER_PREFIX):
        return
    if name:
        raise RuntimeError(
            f"named servers are for apps (app-<slug>); {name!r} is not one: "
            "use your default server for JupyterLab"
        )
    if not may_use_lab(spawner.user):
        raise RuntimeError(
            f"{spawner.user.name} has no JupyterLab server: only members of "
            f"{', '.join(LAB_GROUPS)} get one (stakeholders open apps)"
        )


def seed_init_container(hub_image: str, volume_mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """An init container (the hub image) that copies training/ and shared_notebooks/ home.

    It runs dsml.hub.homes as the user's uid: it adds what is missing and updates what the
    user left unchanged, so a platform upgrade brings new notebooks and keeps the user's edits.
    """
    return {
        "name": "dsml-seed-home",
        "image": hub_image,
        "command": [
            PYTHON,
            "-m",
            "dsml.hub.homes",
            HOME,
            f"{IMAGE_ROOT}/training",
            f"{IMAGE_ROOT}/shared_notebooks",
        ],
        "env": [{"name": "HOME", "value": HOME}],
        "volumeMounts": volume_mounts,
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 100,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
    }


def _home_mounts(c: Any) -> list[dict[str, Any]]:
    """The volume mounts z2jh gives user pods that hold the home folder."""
    mounts = c.KubeSpawner.get("volume_mounts") or {}
    items = mounts.values() if isinstance(mounts, dict) else mounts
    return [dict(m) for m in items if m.get("mountPath") == HOME]


def update_spawner(
    c: Any,
    values: dict[str, Any],
    settings: dict[str, Any],
    hub_image: str,
    public_host: str = PROXY_PUBLIC_SERVICE,
    usage_token: str = "",
) -> None:
    """KubeSpawner traits: profiles, app servers, unprivileged pods, seeded homes."""
    base = settings["hub"]["base_url"].rstrip("/") + "/"
    # user and app servers reach the services through the proxy (z2jh lets user pods reach it)
    public = f"http://{public_host}{base}"
    apps_url = f"{public}services/{APPS}/"
    c.KubeSpawner.profile_list = make_profile_list(values, settings, apps_url, usage_token)
    c.KubeSpawner.pre_spawn_hook = refuse_other_servers
    # user pods cannot gain privileges and run as the image's user, never root
    c.KubeSpawner.allow_privilege_escalation = False
    c.KubeSpawner.container_security_context = {
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c.Spawner.server_token_scopes = list(scopes.SERVER_TOKEN_SCOPES)
    environment = dict(c.KubeSpawner.get("environment") or {})
    environment.setdefault("DSML_HUB_URL", public)
    c.KubeSpawner.environment = environment
    if "default_url" not in c.Spawner:
        c.Spawner.default_url = settings["spawner"]["default_url"]
    home_mounts = _home_mounts(c)
    if home_mounts:
        init = list(c.KubeSpawner.get("init_containers") or [])
        init.append(seed_init_container(hub_image, home_mounts))
        c.KubeSpawner.init_containers = init


def scheduler_kubernetes_config(
    values: dict[str, Any], settings: dict[str, Any], datadir: DataDir
) -> Path:
    """The scheduler's config on z2jh: runs are Kubernetes Jobs on the environments' images."""
    default = settings["spawner"]["default_environment"]
    resources = (
        (_environment(values, default).get("resources") or {}) if values["environments"] else {}
    )
    executor: dict[str, Any] = {
        "image_overrides": {
            name: environment_image(values, name)
            for name in settings["environments"]
            if name in values["environments"]
        },
        # jobs pinned to an older environment version run on that version's image
        "version_images": {
            name: dict(_environment(values, name).get("versions") or {})
            for name in settings["environments"]
            if name in values["environments"] and _environment(values, name).get("versions")
        },
    }
    cpu, memory = resources.get("cpu") or {}, resources.get("memory") or {}
    for trait, value in (
        ("cpu_request", cpu.get("request")),
        ("cpu_limit", cpu.get("limit")),
        ("memory_request", memory.get("request")),
        ("memory_limit", memory.get("limit")),
    ):
        if value not in (None, ""):
            executor[trait] = str(value)
    config = {
        "SchedulerApp": {"executor_class": "kubernetes"},
        "KubernetesExecutor": executor,
    }
    path = datadir.root / SCHEDULER / "kubernetes-config.json"
    write_atomic(path, json.dumps(config, indent=1) + "\n", mode=0o600)
    return path


# putting it together


def _merge_by_name(
    existing: list[dict[str, Any]], ours: list[dict[str, Any]], keep: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """z2jh's list with ours merged in by name: ours complete theirs, `keep` keys stay theirs."""
    out = [dict(item) for item in existing]
    index = {item.get("name"): i for i, item in enumerate(out)}
    for item in ours:
        name = item["name"]
        if name in index:
            current = out[index[name]]
            merged = {**current, **item}
            for key in keep:
                if key in current:
                    merged[key] = current[key]
            out[index[name]] = merged
        else:
            index[name] = len(out)
            out.append(dict(item))
    return out


def configure(
    c: Any,
    settings: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
    hub_host: str | None = None,
    public_host: str | None = None,
    hub_image: str | None = None,
) -> None:
    """Add the platform to z2jh's configuration `c` (jupyterhub_config.d calls this).

    Names of z2jh's Services come from its helpers when they are loaded (another release
    name or fullnameOverride changes them); the arguments override them for tests.
    """
    if not on_z2jh(c):
        raise SettingsError(
            "dsml.hub.kubernetes.configure runs after Zero to JupyterHub's config only "
            "(no z2jh helpers and no KubeSpawner); locally use hub_config/jupyterhub_config.py"
        )
    helpers = sys.modules.get("z2jh")
    settings = settings if settings is not None else load_settings()
    values = values if values is not None else load_values()
    if hub_host is None:
        hub_host = helpers.get_name("hub") if helpers else HUB_SERVICE
    if public_host is None:
        public_host = helpers.get_name("proxy-public") if helpers else PROXY_PUBLIC_SERVICE
    if hub_image is None:
        image = (helpers.get_config("hub.image", {}) if helpers else {}) or {}
        if not image.get("name") or not image.get("tag"):
            raise SettingsError(
                "jupyterhub.hub.image needs a name and a tag (the hub image, images/hub): "
                "the home folders' seed container runs it too"
            )
        hub_image = f"{image['name']}:{image['tag']}"
    for name in settings["environments"]:
        _environment(values, name)  # every curated environment needs an image

    datadir = hubconfig.datadir_for(settings)
    datadir.ensure()
    # sign-in is z2jh's when its values name an authenticator (SSO in hub.config); the
    # settings' own (the local one) only where z2jh kept its placeholder
    chosen = helpers.get_config("hub.config.JupyterHub.authenticator_class") if helpers else None
    if chosen in (None, "", "dummy"):
        hubconfig.update_auth(c, settings)
    # the platform's look; on Kubernetes pods isolate users, so no warning on the home page
    c.JupyterHub.template_paths = [
        *(c.JupyterHub.get("template_paths") or []),
        str(Path(hubconfig.__file__).parents[1] / "templates"),
    ]
    c.JupyterHub.template_vars = {
        **(c.JupyterHub.get("template_vars") or {}),
        "dsml_not_isolated": "",
    }

    from traitlets.config import Config

    scratch = Config()
    hubconfig.update_roles(scratch, _k8s_settings(settings))
    c.JupyterHub.load_groups = {
        **scratch.JupyterHub.load_groups,
        **(c.JupyterHub.get("load_groups") or {}),
    }
    c.JupyterHub.custom_scopes = {
        **(c.JupyterHub.get("custom_scopes") or {}),
        **scratch.JupyterHub.custom_scopes,
    }
    c.JupyterHub.load_roles = _merge_by_name(
        c.JupyterHub.get("load_roles") or [], list(scratch.JupyterHub.load_roles)
    )

    ours = services(settings, datadir, hub_host=hub_host, write=True)
    scheduler_kubernetes_config(values, settings, datadir)
    # z2jh read each service's token from its Secret: that one stays
    merged = _merge_by_name(c.JupyterHub.get("services") or [], ours, keep=("api_token",))
    c.JupyterHub.services = merged
    c.JupyterHub.trust_user_provided_tokens = hubconfig.service_tokens_are_random(merged)
    c.JupyterHub.last_activity_interval = hubconfig.ACTIVITY_FROM_PROXY_SECONDS
    c.JupyterHub.tornado_settings = {
        **(c.JupyterHub.get("tornado_settings") or {}),
        "oauth_no_confirm_list": hubconfig.NoConfirmClients(
            f"service-{s['name']}" for s in merged if s.get("oauth_no_confirm")
        ),
    }

    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 0
    base = settings["hub"]["base_url"].rstrip("/") + "/"
    from tornado.web import RedirectHandler

    c.JupyterHub.extra_handlers = [
        *(c.JupyterHub.get("extra_handlers") or []),
        (r"/environments", RedirectHandler, {"url": f"{base}services/{PORTAL}/environments"}),
    ]
    c.JupyterHub.default_url = hubconfig.default_url
    # an app's kernel gets the usage-reader's token (reads the usage totals, nothing else)
    usage_token = ""
    if helpers is not None:
        key = f"hub.services.{hubconfig.USAGE_READER_SERVICE}.apiToken"
        usage_token = helpers.get_secret_value(key, "") or ""
    update_spawner(c, values, settings, hub_image, public_host=public_host, usage_token=usage_token)


def main(argv: list[str] | None = None) -> int:
    """`python -m dsml.hub.kubernetes [--indent N]`: print helm_values() as YAML.

    The chart's values.yaml carries this output between markers; the hub pod builds the same
    services and roles at start, and a test checks the two agree. (Not a `dsml` command: the
    CLI may not import the hub's code.)
    """
    import argparse

    import yaml

    parser = argparse.ArgumentParser(prog="python -m dsml.hub.kubernetes", description=main.__doc__)
    parser.add_argument(
        "--indent", type=int, default=0, help="spaces before every line (2 under jupyterhub:)"
    )
    args = parser.parse_args(argv)
    text = yaml.safe_dump(helm_values(), sort_keys=False, width=100)
    pad = " " * args.indent
    print("".join(pad + line if line.strip() else line for line in text.splitlines(True)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
