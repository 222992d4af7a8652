"""KubeSpawner 7 pod manifests of the hub on Kubernetes, built offline and validated.

The spawner is the real KubeSpawner, configured the way the hub pod configures it: the traits
z2jh 4.4's jupyterhub_config.py sets for the chart's values (home PVC, uid, fsGid), then
`dsml.hub.kubernetes.update_spawner`. A kubeconfig pointing nowhere satisfies KubeSpawner's
constructor; no request reaches any cluster. Every manifest is checked with
kubernetes-validate --strict at the lowest and highest Kubernetes versions we support, and so
are the scheduler's Job manifests on the images the values give.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest

pytest.importorskip("kubespawner", reason="jupyterhub-kubespawner is a test dependency")

from jupyterhub.objects import Hub  # noqa: E402
from kubernetes_asyncio.client import ApiClient  # noqa: E402
from kubespawner import KubeSpawner  # noqa: E402
from traitlets.config import Config  # noqa: E402

from dsml import settings as settings_mod  # noqa: E402
from dsml.hub import kubernetes as k8s  # noqa: E402
from dsml.scheduler.executors.kubernetes import JobSettings, build_job_manifest  # noqa: E402

from conftest import run_async  # noqa: E402

K8S_VERSIONS = ("1.28", "1.33")
"""z2jh 4.4's kubeVersion floor (>=1.28) and the newest schema kubernetes-validate ships here."""

DIGEST = "sha256:" + "ab" * 32
HUB_IMAGE = "registry.example.com/dsml-platform/hub:0.1.0"

VALUES = settings_mod.deep_merge(
    k8s.DEFAULT_VALUES,
    {
        "environments": {
            "datascience": {
                "image": {
                    "name": "registry.example.com/dsml-platform/env-datascience",
                    "tag": "a1b2c3d4e5f6",
                    "digest": DIGEST,
                },
                "versions": {"0f0f0f0f0f0f": "registry.example.com/env-datascience:old"},
                "resources": {
                    "cpu": {"request": "0.5", "limit": "2"},
                    "memory": {"request": "1Gi", "limit": "4Gi"},
                },
            },
            "python-minimal": {
                "image": {
                    "name": "registry.example.com/dsml-platform/env-python-minimal",
                    "tag": "123456abcdef",
                },
                "resources": {
                    "cpu": {"request": "250m", "limit": "1"},
                    "memory": {"request": "512Mi", "limit": "2Gi"},
                },
            },
        },
        "gpu": {"enabled": True, "resources": {"nvidia.com/gpu": 1}, "environment": "datascience"},
    },
)
SETTINGS = settings_mod.validate({})


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kubeconfig naming an address nothing listens on: KubeSpawner needs one to exist.

    kubernetes_asyncio reads KUBECONFIG when it is imported, so its default path is set.
    """
    from kubernetes_asyncio.config import kube_config

    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        'clusters: [{name: offline, cluster: {server: "https://127.0.0.1:9"}}]\n'
        "users: [{name: offline, user: {token: offline}}]\n"
        "contexts: [{name: offline, context: {cluster: offline, user: offline}}]\n"
        "current-context: offline\n"
    )
    saved = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    yield str(path)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved


def z2jh_spawner_config() -> Config:
    """The KubeSpawner traits z2jh 4.4's config sets for its default singleuser values."""
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.KubeSpawner.uid = 1000
    c.KubeSpawner.fs_gid = 100
    c.KubeSpawner.allow_privilege_escalation = False
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.volumes = {
        "volume-{user_server}": {
            "name": "volume-{user_server}",
            "persistentVolumeClaim": {"claimName": "{pvc_name}"},
        }
    }
    c.KubeSpawner.volume_mounts = {
        "volume-{user_server}": {
            "mountPath": "/home/jovyan",
            "name": "volume-{user_server}",
            "subPath": None,
        }
    }
    c.KubeSpawner.namespace = "dsml"
    k8s.update_spawner(c, VALUES, SETTINGS, HUB_IMAGE)
    return c


class FakeUser:
    """What KubeSpawner reads of a hub user: name, id, url, groups, admin."""

    def __init__(self, name: str, groups: list[str], admin: bool = False):
        self.name = name
        self.escaped_name = name
        self.id = 42
        self.admin = admin
        self.url = f"/user/{name}/"
        self.groups = [SimpleNamespace(name=g) for g in groups]


def spawner(kubeconfig: str, user: FakeUser, name: str = "", options: dict | None = None):
    """A KubeSpawner as the hub makes one (its orm row names the server), with options set.

    KubeSpawner makes its API client for the running event loop: a loop runs while it does.
    """

    async def make() -> KubeSpawner:
        return KubeSpawner(
            _mock=True,
            user=user,
            hub=Hub(),
            config=z2jh_spawner_config(),
            orm_spawner=SimpleNamespace(name=name, server=None, user_options=None),
        )

    sp = run_async(make())
    sp.user_options = options or {}
    return sp


def pod_of(sp: Any) -> dict[str, Any]:
    """Load the options like start() does, then the pod manifest as plain JSON."""

    async def build() -> dict[str, Any]:
        await sp.load_user_options()
        pod = await sp.get_pod_manifest()
        return ApiClient().sanitize_for_serialization(pod)

    manifest = run_async(build())
    manifest.setdefault("apiVersion", "v1")
    manifest.setdefault("kind", "Pod")
    return manifest


def validate(manifest: dict[str, Any]) -> None:
    for version in K8S_VERSIONS:
        assert kubernetes_validate.validate(manifest, version, strict=True) == version


def container(pod: dict[str, Any], name: str = "notebook") -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def res(c: dict[str, Any], kind: str) -> dict[str, str]:
    """A container's requests or limits, every quantity as text (KubeSpawner writes numbers)."""
    return {k: str(v) for k, v in (c["resources"].get(kind) or {}).items()}


def assert_unprivileged(pod: dict[str, Any]) -> None:
    for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
        context = c.get("securityContext") or {}
        assert context.get("allowPrivilegeEscalation") is False, c["name"]
        assert not context.get("privileged"), c["name"]
        assert context.get("runAsUser", 1000) != 0, c["name"]
    # z2jh's singleuser.uid: the image's user, never root
    assert container(pod)["securityContext"]["runAsUser"] == 1000
    assert container(pod)["securityContext"]["runAsNonRoot"] is True


PROFILES = ["datascience", "python-minimal", "datascience-gpu"]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_gives_a_valid_unprivileged_pod(kubeconfig: str, profile: str) -> None:
    sp = spawner(kubeconfig, FakeUser("ana", ["analysts"]), options={"profile": profile})
    pod = pod_of(sp)
    validate(pod)
    notebook = container(pod)
    env_name = profile.removesuffix("-gpu")
    if env_name == "datascience":
        # the digest pins the image, whatever the tag says
        assert notebook["image"] == f"registry.example.com/dsml-platform/env-datascience@{DIGEST}"
        requests = res(notebook, "requests")
        assert {requests["cpu"], requests["memory"]} == {"0.5", str(2**30)}
        assert res(notebook, "limits")["cpu"] == "2.0"
        assert res(notebook, "limits")["memory"] == str(4 * 2**30)
    else:
        assert notebook["image"].endswith("env-python-minimal:123456abcdef")
        assert res(notebook, "requests")["cpu"] == "0.25"
    if profile.endswith("-gpu"):
        assert res(notebook, "limits")["nvidia.com/gpu"] == "1"
    else:
        assert "nvidia.com/gpu" not in notebook["resources"]["limits"]
    assert_unprivileged(pod)
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert env["DSML_ENVIRONMENT"] == env_name
    assert env["DSML_HUB_URL"] == "http://proxy-public/"
    # home on the user's PVC, seeded with training and shared notebooks by an init container
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["volume-ana"]["persistentVolumeClaim"]["claimName"] == "claim-ana"
    assert {m["mountPath"] for m in notebook["volumeMounts"]} >= {"/home/jovyan"}
    (seed,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "dsml-seed-home"]
    assert seed["image"] == HUB_IMAGE
    assert seed["command"][-2:] == ["/srv/dsml/training", "/srv/dsml/shared_notebooks"]
    assert seed["volumeMounts"][0]["name"] == "volume-ana"


def test_profiles_offered_per_group(kubeconfig: str) -> None:
    analyst = spawner(kubeconfig, FakeUser("ana", ["analysts"]))
    slugs = [p["slug"] for p in analyst.profile_list(analyst)]
    assert slugs == ["datascience", "python-minimal", "datascience-gpu"]
    stakeholder = spawner(kubeconfig, FakeUser("sam", ["stakeholders"]))
    assert stakeholder.profile_list(stakeholder) == []
    with pytest.raises(RuntimeError, match="no JupyterLab server"):
        k8s.refuse_other_servers(stakeholder)
    other = spawner(kubeconfig, FakeUser("ana", ["analysts"]), name="scratch")
    with pytest.raises(RuntimeError, match="named servers are for apps"):
        k8s.refuse_other_servers(other)
    # a stakeholder's app server is allowed (the apps service starts it for its owner)
    k8s.refuse_other_servers(spawner(kubeconfig, FakeUser("sam", ["stakeholders"]), "app-x"))


@pytest.mark.parametrize(
    "options, image",
    [
        ({}, f"registry.example.com/dsml-platform/env-datascience@{DIGEST}"),
        (
            {"environment": "python-minimal"},
            "registry.example.com/dsml-platform/env-python-minimal:123456abcdef",
        ),
        (
            {"environment": "datascience", "environment_version": "0f0f0f0f0f0f"},
            "registry.example.com/env-datascience:old",
        ),
    ],
)
def test_app_server_pod(kubeconfig: str, options: dict, image: str) -> None:
    sp = spawner(kubeconfig, FakeUser("dana", ["data-scientists"]), "app-sales", options)
    pod = pod_of(sp)
    validate(pod)
    server = container(pod)
    assert server["image"] == image
    assert server["args"] == ["python3", "-m", "dsml.apps.server", "--pool-size=1"]
    assert res(server, "requests") == {"cpu": "0.1", "memory": str(256 * 2**20)}
    assert res(server, "limits") == {"cpu": "1.0", "memory": str(2**30)}
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["DSML_APP_SLUG"] == "sales"
    assert env["DSML_APPS_URL"] == "http://proxy-public/services/apps/"
    # no home volume and no seeding: the app server fetches its bundle from the apps service
    assert not pod["spec"].get("volumes")
    assert not pod["spec"].get("initContainers")
    assert_unprivileged(pod)


def test_app_server_refuses_an_uncurated_environment(kubeconfig: str) -> None:
    sp = spawner(kubeconfig, FakeUser("dana", ["data-scientists"]), "app-x", {"environment": "r"})
    with pytest.raises(ValueError, match="not curated"):
        pod_of(sp)


@pytest.mark.parametrize("environment", ["datascience", "python-minimal"])
def test_scheduler_job_manifests_on_the_values_images(environment: str, tmp_path: Path) -> None:
    from dsml.datadir import DataDir

    path = k8s.scheduler_kubernetes_config(VALUES, SETTINGS, DataDir(tmp_path))
    import json

    executor = json.loads(path.read_text())["KubernetesExecutor"]
    image = executor["image_overrides"][environment]
    settings = JobSettings(
        namespace="dsml",
        cpu_request=executor["cpu_request"],
        cpu_limit=executor["cpu_limit"],
        memory_request=executor["memory_request"],
        memory_limit=executor["memory_limit"],
    )
    run = {"id": 7, "job_id": 3, "owner": "ana", "environment": environment}
    job = build_job_manifest(
        run, image=image, service_url="http://hub:8790/services/scheduler/", settings=settings
    )
    validate(job)
    pod = job["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    assert worker["image"] == k8s.environment_image(VALUES, environment)
    assert worker["securityContext"]["allowPrivilegeEscalation"] is False
    assert worker["resources"]["requests"]["cpu"] == "0.5"
