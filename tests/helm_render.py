"""Render helm/dsml-platform offline with Helm's own engine and check what it renders.

The chart's dependency, Zero to JupyterHub 4.4.0, is not downloaded: its source is in the shared
corpus (`../shared/corpus/z2jh-4.4.0/chart/`). `chart_with_dependency` lays it in as
`charts/jupyterhub/` of a copy of our chart, the way `helm dependency update` and chartpress
would publish it (version 4.4.0, image tags "4.4.0"). Rendering uses helm-python-sdk (Helm v4's
Go SDK); objects are validated with kubernetes-validate's schemas, and values with jsonschema
(Draft 7, as z2jh's `values.schema.yaml` is written).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "dsml-platform"
CORPUS = ROOT.parent / "shared" / "corpus"
Z2JH = CORPUS / "z2jh-4.4.0"
Z2JH_VERSION = "4.4.0"
RELEASE = "dsml"
NAMESPACE = "dsml"

_DELETE = object()


def deep_merge(base: Any, override: Any) -> Any:
    """`override` merged onto `base` the way Helm merges values files.

    Maps merge key by key, lists and scalars replace, and a `None` in `override` deletes the
    key (Helm's `null`). Neither argument is changed.
    """
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path: Path) -> Any:
    """The YAML document in `path`."""
    return yaml.safe_load(path.read_text())


def z2jh_defaults() -> dict[str, Any]:
    """z2jh 4.4.0's default values, as chartpress publishes them (image tags set)."""
    return yaml.safe_load(_published_values_text(Z2JH / "values.yaml"))


def z2jh_schema() -> dict[str, Any]:
    """z2jh 4.4.0's values schema (JSON schema written as YAML)."""
    return load_yaml(Z2JH / "values.schema.yaml")


def our_schema() -> dict[str, Any]:
    """Our chart's values.schema.json."""
    return json.loads((CHART / "values.schema.json").read_text())


def _published_values_text(path: Path) -> str:
    """z2jh's values.yaml text with chartpress's placeholder tags replaced by the version."""
    return path.read_text().replace('"set-by-chartpress"', f'"{Z2JH_VERSION}"')


def chart_with_dependency(workdir: Path, extra_files: dict[str, str] | None = None) -> Path:
    """A copy of our chart in `workdir` with z2jh 4.4.0 laid in as `charts/jupyterhub/`.

    `extra_files` (name -> text) are written to the copy's `files/jupyterhub_config.d/` in
    place of what the link to hub_config/jupyterhub_config.d holds (a test's stand-ins).
    """
    target = workdir / "dsml-platform"
    # symlinks=False: the copy holds the files hub_config/jupyterhub_config.d links to
    shutil.copytree(
        CHART,
        target,
        symlinks=False,
        ignore=shutil.ignore_patterns("charts"),
        ignore_dangling_symlinks=True,
    )
    dependency = target / "charts" / "jupyterhub"
    shutil.copytree(Z2JH / "chart", dependency)
    chart_yaml = dependency / "Chart.yaml"
    chart_yaml.write_text(
        re.sub(r"(?m)^version:.*$", f"version: {Z2JH_VERSION}", chart_yaml.read_text())
    )
    values = dependency / "values.yaml"
    values.write_text(_published_values_text(values))
    if extra_files is not None:
        config_d = target / "files" / "jupyterhub_config.d"
        if config_d.is_symlink() or config_d.is_file():
            config_d.unlink()
        shutil.rmtree(config_d, ignore_errors=True)
        config_d.mkdir(parents=True)
        for name, text in extra_files.items():
            (config_d / name).write_text(text)
    return target


def render(chart_dir: Path, values: dict[str, Any] | None = None) -> dict[str, str]:
    """Helm's rendering of the chart in `chart_dir` with `values` (template path -> text).

    The values are checked against the charts' schemas first, as `helm install` does.
    """
    import helm_python

    chart = helm_python.Chart.load(str(chart_dir))
    try:
        chart.validate_schema(values or {})
        return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in a rendering (NOTES.txt and empty documents left out)."""
    out = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                out.append(document)
    return out


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The object of `kind` named `name` (AssertionError naming what there is, if none)."""
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    names = sorted(o["metadata"]["name"] for o in objs if o["kind"] == kind)
    raise AssertionError(f"no {kind} named {name!r}; there are {names}")


def kubernetes_versions() -> tuple[str, str]:
    """The lowest Kubernetes version we support (the charts' kubeVersion floor, 1.28) and the
    highest kubernetes-validate has schemas for."""
    import kubernetes_validate.utils as kv_utils

    return "1.28.0", kv_utils.latest_version()


def validate_object(obj: dict[str, Any], version: str) -> None:
    """kubernetes-validate --strict of one object at Kubernetes `version` (raises on errors)."""
    import kubernetes_validate

    kubernetes_validate.validate(obj, version, strict=True)


def containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container of a pod spec: init containers and containers."""
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec.get("containers") or []


def pod_specs(objs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload in a rendering."""
    for obj in objs:
        spec = obj.get("spec") or {}
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template"
        )
        if template:
            yield f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]
