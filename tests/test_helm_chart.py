"""helm/dsml-platform without a cluster: metadata, values against both schemas, the whole chart
rendered by Helm's engine with the real z2jh 4.4.0 subchart, every object validated at the
lowest and highest Kubernetes versions we support, and what our values change in z2jh's objects.

Not verified here (no cluster): scheduling on nodes, storage provisioning, NetworkPolicy
enforcement, image builds and pulls.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_render import (
    CHART,
    RELEASE,
    Z2JH,
    chart_with_dependency,
    containers,
    deep_merge,
    find,
    kubernetes_versions,
    load_yaml,
    objects,
    our_schema,
    pod_specs,
    render,
    validate_object,
    z2jh_defaults,
    z2jh_schema,
)

pytestmark = pytest.mark.skipif(
    not (Z2JH / "chart" / "Chart.yaml").exists(),
    reason=f"the z2jh 4.4.0 corpus is not at {Z2JH} (../shared/corpus beside the repository)",
)

jsonschema = pytest.importorskip("jsonschema")

EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
CASES = ["default", *(p.stem for p in EXAMPLES)]
# stand-ins for hub_config/jupyterhub_config.d (K-hub's files): the ConfigMap must carry them
CONFIG_D = {"50-dsml.py": "# our hub config, after z2jh's\nc = get_config()  # noqa\n"}
SERVICE_PORTS = {"scheduler": 8790, "apps": 8791, "portal": 8792}


def case_values(case: str) -> dict[str, Any]:
    """The values a user passes for `case` (none for the defaults, else the example file)."""
    return {} if case == "default" else load_yaml(CHART / "examples" / f"{case}.yaml")


def effective_values(case: str) -> dict[str, Any]:
    """Our values.yaml with the case's file merged on, as Helm gives them to the templates."""
    return deep_merge(load_yaml(CHART / "values.yaml"), case_values(case))


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("helm_python", reason="helm-python-sdk is a test dependency")
    return chart_with_dependency(tmp_path_factory.mktemp("chart"), CONFIG_D)


@pytest.fixture(scope="module")
def rendered(chart_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {case: objects(render(chart_dir, case_values(case))) for case in CASES}


# metadata


def test_chart_metadata() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    [dependency] = chart["dependencies"]
    assert dependency == {
        "name": "jupyterhub",
        "version": "4.4.0",
        "repository": "https://hub.jupyter.org/helm-chart/",
        "condition": "jupyterhub.enabled",
    }
    assert "alias" not in dependency

    def floor(constraint: str) -> tuple[int, ...]:
        match = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)(-0)?", constraint.strip())
        assert match, f"kubeVersion {constraint!r} is not a plain lower bound"
        return tuple(int(x) for x in match.groups()[:3])

    z2jh_floor = floor(load_yaml(Z2JH / "Chart.yaml")["kubeVersion"])
    assert floor(chart["kubeVersion"]) >= z2jh_floor
    lowest, _ = kubernetes_versions()
    assert tuple(int(x) for x in lowest.split(".")) == floor(chart["kubeVersion"])


def test_every_values_key_is_commented() -> None:
    """Each key of values.yaml has a comment on its line or right above it (list items of a
    commented key excepted: their keys are the Kubernetes API's own)."""
    text = (CHART / "values.yaml").read_text()
    # the generated hub.services / hub.loadRoles are documented by the Python that makes them
    start, end = text.index("    # >>> generated"), text.index("    # <<< generated")
    text = text[:start] + text[end:]
    lines = text.splitlines()
    missing = []
    in_list_item_indent: int | None = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if in_list_item_indent is not None and indent <= in_list_item_indent:
            in_list_item_indent = None
        if stripped.startswith("- "):
            in_list_item_indent = indent if in_list_item_indent is None else in_list_item_indent
            continue
        if in_list_item_indent is not None:
            continue
        if not re.match(r"^[\w.\-/\"']+:", stripped):
            continue
        previous = next((p.strip() for p in reversed(lines[: number - 1]) if p.strip()), "")
        if "#" not in line and not previous.startswith("#"):
            missing.append(f"line {number}: {stripped}")
    assert not missing, "keys without a comment:\n" + "\n".join(missing)


# values against the schemas


def _errors(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(values)
    ]


@pytest.mark.parametrize("case", CASES)
def test_values_validate_against_z2jh_and_our_schema(case: str) -> None:
    values = effective_values(case)
    # z2jh's schema: our jupyterhub tree merged onto z2jh's defaults, as Helm gives them to it
    z2jh_values = deep_merge(z2jh_defaults(), values["jupyterhub"])
    assert not _errors(z2jh_schema(), z2jh_values)
    assert not _errors(our_schema(), values)
    # the settings pass the same check as locally (dsml.settings.validate)
    from dsml import settings

    settings.validate(values["dsml"]["settings"], source=f"{case}: dsml.settings")


BAD_VALUES = [
    ({"dsml": {"gpu": {"enabeld": True}}}, "enabeld", "ours"),
    ({"dsml": {"jobs": {"rbac": "yes"}}}, "dsml/jobs/rbac", "ours"),
    ({"dsml": {"settings": {"scheduler": {"capacityy": 3}}}}, "capacityy", "ours"),
    (
        {"dsml": {"environments": {"datascience": {"resources": {"cpu": {"request": "lots"}}}}}},
        "dsml/environments/datascience/resources/cpu/request",
        "ours",
    ),
    ({"dsml": {"environments": {"datascience": {"image": {"tag": "latest"}}}}}, "tag", "ours"),
    ({"dsmll": {}}, "dsmll", "ours"),
    ({"jupyterhub": {"hub": {"imagee": {"name": "x"}}}}, "imagee", "z2jh"),
    ({"jupyterhub": {"singleuser": {"storage": {"capacity": 10}}}}, "capacity", "z2jh"),
]


@pytest.mark.parametrize("bad,key,schema", BAD_VALUES, ids=[b[1] for b in BAD_VALUES])
def test_typo_or_wrong_type_is_rejected_with_its_key(bad: dict, key: str, schema: str) -> None:
    values = deep_merge(load_yaml(CHART / "values.yaml"), bad)
    if schema == "ours":
        errors = _errors(our_schema(), values)
    else:
        errors = _errors(z2jh_schema(), deep_merge(z2jh_defaults(), values["jupyterhub"]))
    assert errors, f"{bad} was accepted"
    assert any(key in e for e in errors), errors


def test_helm_rejects_a_typo_with_its_key(chart_dir: Path) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmValuesError, match="enabeld"):
        render(chart_dir, {"dsml": {"gpu": {"enabeld": True}}})


def test_settings_schema_is_the_platforms() -> None:
    """values.schema.json's dsml.settings is dsml.settings.SCHEMA (Go's regexp has no
    lookahead: the app slug's pattern is written as an equivalent pattern + maxLength)."""
    from dsml import settings

    expected = json.loads(json.dumps(settings.SCHEMA))
    expected.pop("$schema")
    slug = expected["properties"]["apps"]["properties"]["declared"]["items"]["properties"]
    assert slug["slug"] == {"type": "string", "pattern": "^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,25}$"}
    slug["slug"] = {"type": "string", "pattern": "^[a-z](-?[a-z0-9])*$", "maxLength": 26}
    ours = our_schema()["properties"]["dsml"]["properties"]["settings"]
    ours = {k: v for k, v in ours.items() if k != "description"}
    assert ours == expected, "regenerate dsml.settings in values.schema.json from SCHEMA"
    # the two slug patterns agree
    pattern_py = re.compile(
        settings.SCHEMA["properties"]["apps"]["properties"]["declared"]["items"]["properties"][
            "slug"
        ]["pattern"]
    )
    for slug_text in ["a", "ab-c", "a-", "a--b", "-a", "a" * 26, "a" * 27, "a1-2b", "A"]:
        ours_ok = bool(re.fullmatch(r"[a-z](-?[a-z0-9])*", slug_text)) and len(slug_text) <= 26
        assert ours_ok == bool(pattern_py.search(slug_text)), slug_text


# the rendered chart


@pytest.mark.parametrize("case", CASES)
def test_every_object_is_valid_at_lowest_and_highest_kubernetes(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    pytest.importorskip("kubernetes_validate")
    failures = []
    for version in kubernetes_versions():
        for obj in rendered[case]:
            try:
                validate_object(obj, version)
            except Exception as e:  # noqa: BLE001 - every failure is reported, by object
                failures.append(f"{version} {obj['kind']}/{obj['metadata']['name']}: {e}")
    assert not failures, "\n".join(failures)


DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@pytest.mark.parametrize("case", CASES)
def test_names_images_and_resources(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    from kubernetes.utils import parse_quantity

    problems = []
    for obj in rendered[case]:
        name = obj["metadata"]["name"]
        label = obj["kind"] in ("Service", "Namespace")  # Services' names are DNS-1123 labels
        pattern, limit = (DNS1123_LABEL, 63) if label else (DNS1123_SUBDOMAIN, 253)
        if not pattern.fullmatch(name) or len(name) > limit:
            problems.append(f"{obj['kind']} name {name!r} is not DNS-1123")
    for where, spec in pod_specs(rendered[case]):
        for container in containers(spec):
            image = container["image"]
            if image.endswith(":latest") or not re.search(r":[\w][\w.-]*$|@sha256:", image):
                problems.append(f"{where} {container['name']}: image {image!r} has no pinned tag")
            resources = container.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource, value in (resources.get(kind) or {}).items():
                    try:
                        parse_quantity(value)
                    except ValueError:
                        problems.append(f"{where} {container['name']}: {kind}.{resource}={value}")
            for resource, request in (resources.get("requests") or {}).items():
                limit_value = (resources.get("limits") or {}).get(resource)
                if limit_value is not None and parse_quantity(request) > parse_quantity(
                    limit_value
                ):
                    problems.append(f"{where} {container['name']}: {resource} request > limit")
    # our values' quantities: what the hub turns into profiles, app servers and jobs
    dsml = effective_values(case)["dsml"]
    groups = {f"environments.{n}": e["resources"] for n, e in dsml["environments"].items()}
    groups["apps"] = dsml["apps"]["resources"]
    for where, resources in groups.items():
        for resource, pair in resources.items():
            if parse_quantity(pair["request"]) > parse_quantity(pair["limit"]):
                problems.append(f"dsml.{where}.resources.{resource}: request > limit")
        for environment in dsml["environments"].values():
            for version, ref in environment["versions"].items():
                if ref.endswith(":latest") or not re.search(r":[\w][\w.-]*$|@sha256:", ref):
                    problems.append(f"dsml.environments versions {version}: {ref!r} unpinned")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", CASES)
def test_hub_deployment_carries_our_image_volumes_and_environment(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    hub_values = effective_values(case)["jupyterhub"]["hub"]
    spec = find(rendered[case], "Deployment", "hub")["spec"]["template"]["spec"]
    [hub] = [c for c in spec["containers"] if c["name"] == "hub"]
    assert hub["image"] == f"{hub_values['image']['name']}:{hub_values['image']['tag']}"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dsml-settings"]["secret"]["secretName"] == "dsml-settings"
    assert volumes["dsml-hub-config"]["configMap"]["name"] == "dsml-hub-config"
    mounts = {m["name"]: m["mountPath"] for m in hub["volumeMounts"]}
    assert mounts["dsml-settings"] == "/usr/local/etc/dsml"
    assert mounts["dsml-hub-config"] == "/usr/local/etc/jupyterhub/jupyterhub_config.d"
    # z2jh's own mounts are still there: its jupyterhub_config.py runs first
    assert mounts["config"] == "/usr/local/etc/jupyterhub/config/"
    env = {e["name"]: e for e in hub["env"]}
    assert env["DSML_SETTINGS"]["value"] == "/usr/local/etc/dsml/settings.yaml"
    secret = effective_values(case)["dsml"]["postgresql"]["secretName"]
    for service in ("HUB", "SCHEDULER", "APPS", "PORTAL"):
        ref = env[f"DSML_{service}_DB_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret
    # every Secret and ConfigMap the hub mounts is rendered (names are fixed, see values.yaml)
    for volume in volumes.values():
        if "secret" in volume:
            find(rendered[case], "Secret", volume["secret"]["secretName"])
        if "configMap" in volume:
            find(rendered[case], "ConfigMap", volume["configMap"]["name"])
    assert spec["serviceAccountName"] == "hub"


@pytest.mark.parametrize("case", CASES)
def test_hub_service_ports_match_the_services(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    service = find(rendered[case], "Service", "hub")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["hub"]["port"] == 8081
    for name, port in SERVICE_PORTS.items():
        assert ports[name]["port"] == port and ports[name]["targetPort"] == port
    # the generated services answer on those ports of the hub Service
    services = effective_values(case)["jupyterhub"]["hub"]["services"]
    for name, port in SERVICE_PORTS.items():
        assert services[name]["url"] == f"http://hub:{port}"
    # z2jh's Prometheus annotations on the hub Service, ours on a Service per service
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/hub/metrics"
    for name, port in SERVICE_PORTS.items():
        metrics = find(rendered[case], "Service", f"dsml-{name}-metrics")
        assert metrics["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/path": f"/services/{name}/metrics",
            "prometheus.io/port": str(port),
        }
        assert metrics["spec"]["selector"] == {
            "app": "jupyterhub",
            "component": "hub",
            "release": RELEASE,
        }


def test_network_policies(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objs = rendered["default"]
    ports = [{"port": p} for p in SERVICE_PORTS.values()]
    hub_ingress = find(objs, "NetworkPolicy", "hub")["spec"]["ingress"]
    # proxy -> services and hub -> itself (the health check through its own Service)
    assert {
        "from": [
            {"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "proxy"}}},
            {"podSelector": {"matchLabels": {"dsml.io/network-access-services": "true"}}},
        ],
        "ports": ports,
    } in hub_ingress
    hub_pod = find(objs, "Deployment", "hub")["spec"]["template"]["metadata"]["labels"]
    assert hub_pod["dsml.io/network-access-services"] == "true"
    # job pods -> the scheduler only (user and app servers go through the proxy)
    assert {
        "from": [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "dsml-scheduler"}}}
        ],
        "ports": [{"port": SERVICE_PORTS["scheduler"]}],
    } in hub_ingress
    assert len(hub_ingress) == 3, hub_ingress  # z2jh's own rule and our two
    # job pods: nothing in, out only to the scheduler's port on the hub pod and DNS
    jobs = find(objs, "NetworkPolicy", "dsml-jobs")["spec"]
    assert jobs["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/managed-by": "dsml-scheduler"}
    }
    assert jobs["policyTypes"] == ["Ingress", "Egress"] and jobs["ingress"] == []
    to_hub, dns = jobs["egress"]
    assert to_hub == {
        "to": [
            {
                "podSelector": {
                    "matchLabels": {"app": "jupyterhub", "component": "hub", "release": RELEASE}
                }
            }
        ],
        "ports": [{"port": SERVICE_PORTS["scheduler"], "protocol": "TCP"}],
    }
    assert {p["port"] for p in dns["ports"]} == {53}
    assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}


def test_job_pods_match_the_network_policy() -> None:
    """The executor labels every run pod with what the NetworkPolicies select on."""
    from dsml.scheduler.executors import kubernetes as executor

    run = {"id": 7, "job_id": 3, "owner": "ana", "environment": "datascience"}
    job = executor.build_job_manifest(run, image="x:1", service_url="http://hub:8090")
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "dsml-scheduler"


def test_scheduler_role_grants_exactly_what_the_executor_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objs = rendered["default"]
    role = find(objs, "Role", "dsml-scheduler")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): ["create", "get", "list", "watch", "delete"],
        (("",), ("pods",)): ["get", "list"],
        (("",), ("pods/log",)): ["get"],
        (("",), ("secrets",)): ["create", "patch", "delete"],
    }
    binding = find(objs, "RoleBinding", "dsml-scheduler")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "dsml-scheduler",
    }
    # bound to the hub pod's ServiceAccount (the scheduler runs in the hub pod)
    hub_sa = find(objs, "Deployment", "hub")["spec"]["template"]["spec"]["serviceAccountName"]
    find(objs, "ServiceAccount", hub_sa)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": hub_sa, "namespace": "dsml"}]


@pytest.mark.parametrize("case", CASES)
def test_settings_secret_and_hub_config(
    rendered: dict[str, list[dict[str, Any]]], case: str
) -> None:
    from dsml import settings

    dsml = effective_values(case)["dsml"]
    secret = find(rendered[case], "Secret", "dsml-settings")
    data = secret["stringData"]
    assert yaml.safe_load(data["settings.yaml"]) == dsml["settings"]
    settings.validate(yaml.safe_load(data["settings.yaml"]), source="settings.yaml")
    assert json.loads(data["dsml-values.json"]) == dsml
    config = find(rendered[case], "ConfigMap", "dsml-hub-config")
    assert config["data"] == CONFIG_D


@pytest.mark.parametrize("case", CASES)
def test_user_pods(rendered: dict[str, list[dict[str, Any]]], case: str) -> None:
    """What the hub's KubeSpawner gets from z2jh's values (the hub Secret's values.yaml): no
    privilege escalation, no privileged iptables container, homes on per-user PVCs."""
    values = deep_merge(z2jh_defaults(), effective_values(case)["jupyterhub"])["singleuser"]
    hub_values = yaml.safe_load(
        __import__("base64").b64decode(find(rendered[case], "Secret", "hub")["data"]["values.yaml"])
    )
    singleuser = hub_values["singleuser"]
    assert singleuser["allowPrivilegeEscalation"] is False
    # no privileged iptables init container: the NetworkPolicy blocks the metadata server
    assert singleuser["cloudMetadata"]["blockWithIptables"] is False
    assert singleuser["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
    # homes on a PVC per user (the hub's dsml.hub.kubernetes seeds them with an init container)
    assert singleuser["storage"]["type"] == "dynamic"
    assert singleuser["storage"]["homeMountPath"] == "/home/jovyan"
    assert singleuser["storage"]["dynamic"].get("storageClass") == (
        values["storage"].get("dynamic", {}).get("storageClass")
    )
    assert not singleuser["initContainers"]
    # the hub reads the services and roles from the same Secret
    assert set(SERVICE_PORTS) <= set(hub_values["hub"]["services"])


def test_postgresql_switch(chart_dir: Path, rendered: dict[str, list[dict[str, Any]]]) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmRenderError, match=r"jupyterhub\.hub\.db\.type"):
        render(chart_dir, {"dsml": {"postgresql": {"enabled": True}}})
    with pytest.raises(helm_python.HelmRenderError, match=r"dsml\.postgresql\.enabled"):
        render(chart_dir, {"jupyterhub": {"hub": {"db": {"type": "postgres"}}}})
    with pytest.raises(helm_python.HelmRenderError, match="DSML_APPS_DB_URL"):
        render(
            chart_dir,
            {
                "jupyterhub": {
                    "hub": {
                        "db": {"type": "postgres"},
                        "extraEnv": {
                            "DSML_APPS_DB_URL": {
                                "valueFrom": {"secretKeyRef": {"name": "other", "key": "apps"}}
                            }
                        },
                    }
                },
                "dsml": {"postgresql": {"enabled": True}},
            },
        )
    # production: PostgreSQL, no hub PVC
    production = rendered["production"]
    assert not [o for o in production if o["kind"] == "PersistentVolumeClaim"]
    assert [o for o in rendered["default"] if o["kind"] == "PersistentVolumeClaim"]


def test_hub_db_url_comes_from_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """hub.extraConfig.dsml-hub-db, run as z2jh runs it (exec in its config's namespace)."""
    from traitlets.config import Config

    snippet = load_yaml(CHART / "values.yaml")["jupyterhub"]["hub"]["extraConfig"]["dsml-hub-db"]
    monkeypatch.setenv("DSML_HUB_DB_URL", "postgresql://dsml:pw@pg:5432/jupyterhub")
    for db, expected in (
        (
            {"hub.db.type": "postgres", "hub.db.url": None},
            "postgresql://dsml:pw@pg:5432/jupyterhub",
        ),
        ({"hub.db.type": "postgres", "hub.db.url": "postgresql://x@y/z"}, None),
        ({"hub.db.type": "sqlite-pvc", "hub.db.url": None}, None),
    ):
        c = Config()
        exec(snippet, {"c": c, "get_config": lambda key, default=None, db=db: db.get(key, default)})
        assert c.JupyterHub.get("db_url") == expected, db


def test_gpu_environment_must_exist(chart_dir: Path) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmRenderError, match="dsml.gpu.environment"):
        render(chart_dir, {"dsml": {"gpu": {"enabled": True, "environment": "nope"}}})


def test_production_example_has_tls_sso_storage_and_gpu(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objs = rendered["production"]
    # z2jh's autohttps (traefik with Let's Encrypt) fronts the proxy
    find(objs, "Deployment", "autohttps")
    values = effective_values("production")
    assert values["jupyterhub"]["singleuser"]["storage"]["dynamic"]["storageClass"]
    assert values["jupyterhub"]["hub"]["config"]["JupyterHub"]["authenticator_class"] == (
        "generic-oauth"
    )
    assert values["dsml"]["gpu"]["enabled"]


def test_values_hub_services_agree_with_the_python() -> None:
    """hub.services / hub.loadRoles in values.yaml are what dsml.hub.kubernetes.helm_values()
    generates (the same Python that configures the services locally)."""
    try:
        from dsml.hub import kubernetes as hub_kubernetes
    except ImportError:
        pytest.skip("dsml.hub.kubernetes (K-hub's helm_values()) is not on this branch yet")
    generated = hub_kubernetes.helm_values()
    hub = load_yaml(CHART / "values.yaml")["jupyterhub"]["hub"]
    generated_hub = generated.get("jupyterhub", generated).get("hub", generated)
    assert hub["services"] == generated_hub["services"]
    assert hub["loadRoles"] == generated_hub["loadRoles"]


def test_without_z2jh_only_our_objects_render(chart_dir: Path) -> None:
    """jupyterhub.enabled: false (the dependency's condition) leaves only our own objects."""
    objs = objects(render(chart_dir, {"jupyterhub": {"enabled": False}}))
    assert {o["metadata"]["name"] for o in objs} <= {
        "dsml-settings",
        "dsml-hub-config",
        "dsml-scheduler",
        "dsml-jobs",
        *(f"dsml-{name}-metrics" for name in SERVICE_PORTS),
    }
