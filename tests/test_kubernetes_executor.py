"""The Kubernetes executor: its manifests are valid Job and Secret objects, and it drives Jobs.

Manifests are checked against the Kubernetes 1.30 OpenAPI schemas (kubernetes-validate, strict:
no unknown fields) for both curated environments. start / is_alive / stop run the official
client against a small stand-in API server on 127.0.0.1 (no cluster exists here) that keeps
Jobs and Secrets in a dict and answers the way the real API server does for the calls made.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes.client
import kubernetes_validate
import pytest
import yaml
from traitlets import TraitError

from dsml.environments import find_environment
from dsml.scheduler import worker
from dsml.scheduler.exceptions import SchedulerError
from dsml.scheduler.executors import Launch, executor_class
from dsml.scheduler.executors.kubernetes import (
    JobSettings,
    KubernetesExecutor,
    build_job_manifest,
    build_secret_manifest,
    label_value,
)

from conftest import run_async

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ["python-minimal", "datascience"]
K8S_VERSION = "1.30"
SERVICE_URL = "http://hub.dsml.svc:8790/services/scheduler/"
NOW = datetime(2026, 11, 22, 12, 0, 0)
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

OWNERS = ["ana", "ana.lopez@example.com", "Zoë Müller", "-dash-", "x" * 80, "@@@"]
DEADLINES = [None, NOW + timedelta(minutes=10), NOW - timedelta(minutes=1)]


def make_run(run_id: int, owner: str, environment: str, deadline: datetime | None) -> dict:
    """A run shaped like the store's run_dict (the fields the executor reads)."""
    return {
        "id": run_id,
        "job_id": 1000 + run_id,
        "owner": owner,
        "environment": environment,
        "state": "starting",
        "deadline_at": deadline.isoformat() + "Z" if deadline else None,
        "executor_ref": None,
    }


def launch_for(run: dict, token: str) -> Launch:
    """The Launch the run manager hands the executor for `run`."""
    return Launch(
        run_id=run["id"],
        token=token,
        service_url=SERVICE_URL,
        kernel_name=f"dsml-{run['environment']}",
        environment=run["environment"],
    )


def lock_version(environment: str) -> str:
    """The environment's version computed here from its lock file: sha256, first 12 digits."""
    lock = ROOT / "images" / environment / "requirements.txt"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:12]


ALL_RUNS = [
    make_run(10 + i, owner, environment, DEADLINES[i % len(DEADLINES)])
    for i, (environment, owner) in enumerate(itertools.product(ENVIRONMENTS, OWNERS))
]


# manifests, no cluster


@pytest.mark.parametrize("run", ALL_RUNS, ids=lambda r: f"{r['environment']}-{r['id']}")
def test_manifests_are_valid_job_and_secret(run: dict) -> None:
    env = find_environment(run["environment"])
    job = build_job_manifest(run, image=env.image_tag, service_url=SERVICE_URL, now=NOW)
    secret = build_secret_manifest(run, "tok-" + "a" * 40)
    assert kubernetes_validate.validate(job, K8S_VERSION, strict=True) == K8S_VERSION
    assert kubernetes_validate.validate(secret, K8S_VERSION, strict=True) == K8S_VERSION
    owned = build_secret_manifest(
        run, "tok", owner={"metadata": {"name": job["metadata"]["name"], "uid": str(uuid.uuid4())}}
    )
    kubernetes_validate.validate(owned, K8S_VERSION, strict=True)
    # what the schema does not check: names and label values
    assert DNS_LABEL.fullmatch(job["metadata"]["name"]) and len(job["metadata"]["name"]) <= 63
    assert DNS_LABEL.fullmatch(secret["metadata"]["name"])
    for labels in (
        job["metadata"]["labels"],
        job["spec"]["template"]["metadata"]["labels"],
        secret["metadata"]["labels"],
    ):
        for value in labels.values():
            assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value


def test_a_broken_manifest_is_caught_by_the_validator() -> None:
    """The validation above has teeth: an unknown field or a wrong type fails it."""
    run = ALL_RUNS[0]
    job = build_job_manifest(run, image="img:1", service_url=SERVICE_URL, now=NOW)
    job["spec"]["backofLimit"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    job = build_job_manifest(run, image="img:1", service_url=SERVICE_URL, now=NOW)
    job["spec"]["activeDeadlineSeconds"] = "600"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_job_fields(environment: str) -> None:
    env = find_environment(environment)
    run = make_run(42, "ana.lopez@example.com", environment, NOW + timedelta(minutes=10))
    settings = JobSettings(deadline_grace_seconds=30, ttl_seconds_after_finished=900)
    job = build_job_manifest(
        run, image=env.image_tag, service_url=SERVICE_URL, settings=settings, now=NOW
    )
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]

    assert container["image"] == f"dsml-platform/env-{environment}:{lock_version(environment)}"
    assert container["command"] == [
        "python",
        "-m",
        "dsml.scheduler.worker",
        "--kernel",
        f"dsml-{environment}",
        f"--memory-limit-bytes={int(4 * 2**30 * 0.9)}",
        "--memory-limit-source=90% of the job pod's memory limit, 4Gi",
    ]
    # the worker in the pod takes that command line: the kernel is capped below the pod's limit
    args = worker.parse(container["command"][3:])
    assert (args.kernel, args.memory_limit_bytes) == (f"dsml-{environment}", int(4 * 2**30 * 0.9))
    assert "4Gi" in args.memory_limit_source
    assert job["metadata"]["name"] == "dsml-run-42"
    assert job["metadata"]["namespace"] == "default"
    assert spec["activeDeadlineSeconds"] == 600 + 30
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 900
    assert pod["restartPolicy"] == "Never"
    assert "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False

    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "dsml-scheduler"
    assert labels["dsml.io/job-id"] == "1042"
    assert labels["dsml.io/run-id"] == "42"
    assert labels["dsml.io/owner"].startswith("ana.lopez-example.com-")
    assert LABEL_VALUE.fullmatch(labels["dsml.io/owner"])
    assert job["metadata"]["annotations"]["dsml.io/owner"] == "ana.lopez@example.com"
    assert spec["template"]["metadata"]["labels"] == labels

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    env_vars = {e["name"]: e for e in container["env"]}
    assert env_vars["DSML_RUN_ID"] == {"name": "DSML_RUN_ID", "value": "42"}
    assert env_vars["DSML_SERVICE_URL"]["value"] == SERVICE_URL
    assert "value" not in env_vars["DSML_RUN_TOKEN"]
    assert env_vars["DSML_RUN_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "dsml-run-42-token", "key": "token"}
    }
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }

    token = "s3cret-token-value"
    secret = build_secret_manifest(run, token, settings=settings)
    assert secret["metadata"]["name"] == "dsml-run-42-token"
    assert secret["stringData"] == {"token": token}
    assert token not in json.dumps(job)


def test_deadlines() -> None:
    env = find_environment("python-minimal")

    def deadline(run_deadline: datetime | None, **settings: Any) -> int | None:
        run = make_run(1, "ana", env.name, run_deadline)
        job = build_job_manifest(
            run,
            image=env.image_tag,
            service_url=SERVICE_URL,
            settings=JobSettings(**settings),
            now=NOW,
        )
        return job["spec"].get("activeDeadlineSeconds")

    assert deadline(NOW + timedelta(seconds=90), deadline_grace_seconds=0) == 90
    assert deadline(NOW + timedelta(seconds=90.2), deadline_grace_seconds=0) == 91
    assert deadline(NOW + timedelta(hours=2)) == 7200 + 60  # default grace
    assert deadline(NOW - timedelta(hours=1), deadline_grace_seconds=5) == 1 + 5
    assert deadline(None) == 24 * 3600
    assert deadline(None, default_deadline_seconds=1800) == 1800
    assert deadline(None, default_deadline_seconds=0) is None
    # a timezone-aware deadline means the same instant
    aware = (NOW + timedelta(seconds=90)).replace(tzinfo=UTC).astimezone()
    run = make_run(1, "ana", env.name, None)
    run["deadline_at"] = aware
    job = build_job_manifest(
        run,
        image="i:1",
        service_url=SERVICE_URL,
        settings=JobSettings(deadline_grace_seconds=0),
        now=NOW,
    )
    assert job["spec"]["activeDeadlineSeconds"] == 90


def test_label_values() -> None:
    assert label_value("ana") == "ana"
    assert label_value("ana.lopez_2") == "ana.lopez_2"
    assert label_value("") == ""
    sanitized = {owner: label_value(owner) for owner in OWNERS + ["a@b", "a+b", "a b"]}
    for owner, value in sanitized.items():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), (owner, value)
    assert len({sanitized["a@b"], sanitized["a+b"], sanitized["a b"]}) == 3
    assert sanitized["Zoë Müller"].startswith("Zo-M-ller-")
    assert len(sanitized["x" * 80]) == 63
    assert re.fullmatch(r"[0-9a-f]{8}", sanitized["@@@"])


def test_settings_come_from_traits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "dsml-jobs")
    executor = KubernetesExecutor(
        service_account="dsml-runner",
        cpu_limit="2",
        memory_request="2Gi",
        memory_limit="",
        ttl_seconds_after_finished=120,
        image_overrides={"datascience": "registry.example.com/ds:pinned"},
        job_name_prefix="dsml-prod-",
        extra_pod_labels={"hub.jupyter.org/network-access-hub": "true"},
    )
    assert executor.namespace == "dsml-jobs"
    assert executor.image_for("datascience") == "registry.example.com/ds:pinned"
    assert executor.image_for("python-minimal") == find_environment("python-minimal").image_tag
    run = make_run(7, "ana", "datascience", None)
    current = find_environment("datascience").version
    assert executor.image_for("datascience", current) == "registry.example.com/ds:pinned"
    job = build_job_manifest(
        run,
        image=executor.image_for("datascience"),
        service_url=SERVICE_URL,
        settings=executor.settings(),
    )
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == "dsml-prod-7"
    assert job["metadata"]["namespace"] == "dsml-jobs"
    assert pod["serviceAccountName"] == "dsml-runner"
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"},
        "limits": {"cpu": "2"},
    }
    assert job["spec"]["ttlSecondsAfterFinished"] == 120
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["hub.jupyter.org/network-access-hub"] == "true"
    assert pod_labels["dsml.io/run-id"] == "7"
    assert "hub.jupyter.org/network-access-hub" not in job["metadata"]["labels"]
    assert pod["containers"][0]["image"] == "registry.example.com/ds:pinned"
    # no memory limit: the kernel is not capped either
    assert not [a for a in pod["containers"][0]["command"] if a.startswith("--memory")]
    monkeypatch.delenv("POD_NAMESPACE")
    assert KubernetesExecutor().namespace == "default"
    assert executor_class("kubernetes") is KubernetesExecutor
    assert KubernetesExecutor.name == "kubernetes"


def test_bad_job_name_prefix_is_refused() -> None:
    for bad in ("Dsml-", "dsml_run-", "-dsml", "d" * 41):
        with pytest.raises(TraitError, match="job_name_prefix"):
            KubernetesExecutor(job_name_prefix=bad)


def test_a_memory_setting_that_is_no_quantity_is_refused_at_start() -> None:
    for trait in ("memory_request", "memory_limit"):
        with pytest.raises(TraitError, match=f"{trait}: memory '4 GB' is not a quantity"):
            KubernetesExecutor(**{trait: "4 GB"})
    assert KubernetesExecutor(memory_limit="1.5Gi").settings().memory_limit == "1.5Gi"


# a stand-in API server for start / is_alive / stop


def status(code: int, reason: str, message: str) -> dict:
    """A Kubernetes `Status` object as the API server answers errors with."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


ROUTES = [
    ("jobs", re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?")),
    ("secrets", re.compile(r"/api/v1/namespaces/([^/]+)/secrets(?:/([^/]+))?")),
]
KINDS = {"jobs": ("Job", "batch/v1"), "secrets": ("Secret", "v1")}
# both merge a patch like `merge` below as long as lists are only set, never merged into
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


def merge(target: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386): maps merge, null removes, everything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value
    return target


class FakeKubernetes:
    """Jobs and Secrets in a dict behind the paths the official client calls.

    Like the real API server it gives created objects a uid, stores Secret `stringData` as
    base64 `data`, refuses to change an immutable Secret's data, answers a Foreground delete
    of a Job with the Job (deletionTimestamp set) and deletes what the Job owns with it.
    """

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.requests: list[dict] = []
        self.fail: dict[tuple[str, str], int] = {}  # (method, resource) -> status, once
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with fake.lock:
                    code, answer = fake.handle(
                        self.command,
                        url.path,
                        parse_qs(url.query),
                        self.headers.get("Content-Type", ""),
                        body,
                    )
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def handle(
        self, method: str, path: str, query: dict, content_type: str, body: Any
    ) -> tuple[int, dict]:
        """Answer one request: (status code, JSON body)."""
        routed = [(r, m) for r, pattern in ROUTES if (m := pattern.fullmatch(path))]
        if not routed:
            return 404, status(404, "NotFound", f"the fake serves no {path}")
        ((resource, match),) = routed
        namespace, name = match.groups()
        self.requests.append(
            {
                "method": method,
                "resource": resource,
                "namespace": namespace,
                "name": name,
                "query": query,
                "content_type": content_type,
                "body": body,
            }
        )
        injected = self.fail.pop((method, resource), None)
        if injected:
            return injected, status(injected, "InternalError", "injected failure")
        if method == "POST" and name is None:
            return self.create(resource, namespace, body)
        key = (resource, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            return 404, status(404, "NotFound", f'{resource} "{name}" not found')
        if method == "GET":
            return 200, obj
        if method == "PATCH":
            if content_type not in PATCH_TYPES:
                return 415, status(415, "UnsupportedMediaType", f"no patch type {content_type}")
            patch = body or {}
            if obj.get("immutable") and ({"data", "stringData"} & set(patch)):
                return 422, status(422, "Invalid", "field is immutable when `immutable` is set")
            merge(obj, patch)
            return 200, obj
        if method == "DELETE":
            policy = (query.get("propagationPolicy") or [None])[0] or (body or {}).get(
                "propagationPolicy"
            )
            self.delete(key)
            if resource == "jobs" and policy == "Foreground":
                gone = json.loads(json.dumps(obj))
                gone["metadata"]["deletionTimestamp"] = "2026-11-22T12:00:00Z"
                gone["metadata"]["finalizers"] = ["foregroundDeletion"]
                return 200, gone
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "kind": resource, "uid": obj["metadata"]["uid"]},
            }
        return 405, status(405, "MethodNotAllowed", f"{method} {path}")

    def create(self, resource: str, namespace: str, body: dict) -> tuple[int, dict]:
        """Store a new object, as POST to a collection does."""
        kind, api_version = KINDS[resource]
        if body.get("kind") != kind or body.get("apiVersion") != api_version:
            return 400, status(400, "BadRequest", f"expected {api_version} {kind}")
        name = body["metadata"]["name"]
        if body["metadata"].get("namespace", namespace) != namespace:
            return 400, status(400, "BadRequest", "namespace of the body and the URL differ")
        key = (resource, namespace, name)
        if key in self.objects:
            return 409, status(409, "AlreadyExists", f'{resource} "{name}" already exists')
        obj = json.loads(json.dumps(body))
        obj["metadata"].update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion="1",
            creationTimestamp="2026-11-22T12:00:00Z",
        )
        if resource == "secrets" and "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(v.encode()).decode()
        if resource == "jobs":
            obj["status"] = {"active": 1}
        self.objects[key] = obj
        return 201, obj

    def delete(self, key: tuple[str, str, str]) -> None:
        """Delete an object and, like the garbage collector, everything it owns."""
        obj = self.objects.pop(key)
        uid = obj["metadata"]["uid"]
        for other_key, other in list(self.objects.items()):
            if any(ref["uid"] == uid for ref in other["metadata"].get("ownerReferences", [])):
                self.delete(other_key)

    def get(self, resource: str, namespace: str, name: str) -> dict | None:
        """A stored object, or None."""
        with self.lock:
            return self.objects.get((resource, namespace, name))

    def finish_job(self, namespace: str, name: str, condition: str = "Complete") -> None:
        """Set the Job's final condition, as the Job controller does when its pod ends."""
        with self.lock:
            job = self.objects[("jobs", namespace, name)]
            job["status"] = {
                "succeeded" if condition == "Complete" else "failed": 1,
                "conditions": [{"type": condition, "status": "True"}],
            }

    def calls(self, method: str, resource: str) -> list[dict]:
        """The requests made so far with this method on this resource."""
        with self.lock:
            return [r for r in self.requests if (r["method"], r["resource"]) == (method, resource)]


@pytest.fixture
def fake_k8s() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def executor(fake_k8s: FakeKubernetes) -> Iterator[KubernetesExecutor]:
    configuration = kubernetes.client.Configuration(host=fake_k8s.url)
    executor = KubernetesExecutor(
        k8s_configuration=configuration, namespace="dsml-test", request_timeout_seconds=5
    )
    yield executor
    run_async(executor.shutdown())


def test_start_is_alive_stop(fake_k8s: FakeKubernetes, executor: KubernetesExecutor) -> None:
    env = find_environment("datascience")
    run = make_run(101, "Zoë Müller", "datascience", datetime.now(UTC) + timedelta(minutes=5))
    token = "tok-" + uuid.uuid4().hex

    async def scenario() -> None:
        await executor.prepare(ENVIRONMENTS)
        ref = await executor.start(run, launch_for(run, token))
        job = fake_k8s.get("jobs", "dsml-test", "dsml-run-101")
        assert job is not None
        assert ref == {
            "namespace": "dsml-test",
            "name": "dsml-run-101",
            "uid": job["metadata"]["uid"],
        }

        # the Job the server got is the manifest (the deadline counts from the moment of start)
        (create,) = fake_k8s.calls("POST", "jobs")
        sent = create["body"]
        expected = build_job_manifest(
            run, image=env.image_tag, service_url=SERVICE_URL, settings=executor.settings()
        )
        # five minutes to the deadline when the run was made, plus the default grace of 60 s
        assert 5 * 60 - 10 <= sent["spec"].pop("activeDeadlineSeconds") - 60 <= 5 * 60
        expected["spec"].pop("activeDeadlineSeconds")
        assert sent == expected
        assert token not in json.dumps(sent)
        kubernetes_validate.validate(create["body"], K8S_VERSION, strict=True)

        # the token is in the Secret, which is owned by the Job
        secret = fake_k8s.get("secrets", "dsml-test", "dsml-run-101-token")
        assert secret is not None
        assert base64.b64decode(secret["data"]["token"]).decode() == token
        assert secret["metadata"]["ownerReferences"] == [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "dsml-run-101", "uid": ref["uid"]}
        ]
        assert secret["metadata"]["labels"]["dsml.io/run-id"] == "101"
        (patch,) = fake_k8s.calls("PATCH", "secrets")
        assert "json" in patch["content_type"] and "metadata" in patch["body"]

        stored = {**run, "executor_ref": ref}
        assert await executor.is_alive(stored) is True
        fake_k8s.finish_job("dsml-test", "dsml-run-101", "Complete")
        assert await executor.is_alive(stored) is False

        await executor.stop(stored)
        assert fake_k8s.get("jobs", "dsml-test", "dsml-run-101") is None
        assert fake_k8s.get("secrets", "dsml-test", "dsml-run-101-token") is None
        (delete,) = [r for r in fake_k8s.calls("DELETE", "jobs") if r["name"] == "dsml-run-101"]
        policy = delete["query"].get("propagationPolicy", [None])[0] or (delete["body"] or {}).get(
            "propagationPolicy"
        )
        assert policy == "Foreground"
        assert await executor.is_alive(stored) is False  # 404

        await executor.stop(stored)  # gone already: no error
        await executor.stop({**run, "executor_ref": None})  # found by name; gone: no error

    run_async(scenario())


def test_failed_job_and_replaced_job_are_not_alive(
    fake_k8s: FakeKubernetes, executor: KubernetesExecutor
) -> None:
    run = make_run(102, "ana", "python-minimal", None)

    async def scenario() -> None:
        ref = await executor.start(run, launch_for(run, "t1"))
        stored = {**run, "executor_ref": ref}
        assert await executor.is_alive(stored) is True
        assert await executor.is_alive({**run, "executor_ref": None}) is False
        assert await executor.is_alive({**run, "executor_ref": {**ref, "uid": "other"}}) is False
        fake_k8s.finish_job("dsml-test", "dsml-run-102", "Failed")
        assert await executor.is_alive(stored) is False
        await executor.stop(stored)

    run_async(scenario())


def test_api_errors_are_one_line_and_clean_up(
    fake_k8s: FakeKubernetes, executor: KubernetesExecutor
) -> None:
    run = make_run(103, "ana", "python-minimal", None)

    async def scenario() -> None:
        # the Job is refused: the Secret made for it does not stay behind
        fake_k8s.fail[("POST", "jobs")] = 500
        with pytest.raises(SchedulerError, match="creating Job dsml-test/dsml-run-103") as e:
            await executor.start(run, launch_for(run, "t"))
        assert "\n" not in str(e.value) and "injected failure" in str(e.value)
        assert fake_k8s.get("secrets", "dsml-test", "dsml-run-103-token") is None

        ref = await executor.start(run, launch_for(run, "t"))
        stored = {**run, "executor_ref": ref}
        # a second start of the same run (another deployment with the same names) is refused
        # and leaves the first one's Secret and Job alone
        with pytest.raises(SchedulerError, match="exists already") as e:
            await executor.start(run, launch_for(run, "other"))
        assert e.value.status == 409
        assert fake_k8s.get("secrets", "dsml-test", "dsml-run-103-token") is not None

        # an API server hiccup is an error, not "the worker is gone"
        fake_k8s.fail[("GET", "jobs")] = 503
        with pytest.raises(SchedulerError, match="reading Job"):
            await executor.is_alive(stored)
        assert await executor.is_alive(stored) is True
        fake_k8s.fail[("DELETE", "jobs")] = 500
        with pytest.raises(SchedulerError, match="deleting dsml-test/dsml-run-103"):
            await executor.stop(stored)
        await executor.stop(stored)
        assert fake_k8s.get("jobs", "dsml-test", "dsml-run-103") is None

    run_async(scenario())


def test_unreachable_api_server_is_a_one_line_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    executor = KubernetesExecutor(k8s_configuration=configuration, request_timeout_seconds=2)
    run = make_run(105, "ana", "python-minimal", None)

    async def scenario() -> None:
        with pytest.raises(SchedulerError, match=f"127.0.0.1:{port} did not answer") as e:
            await executor.start(run, launch_for(run, "t"))
        assert "\n" not in str(e.value)
        with pytest.raises(SchedulerError, match="did not answer"):
            await executor.is_alive(
                {**run, "executor_ref": {"namespace": "default", "name": "dsml-run-105"}}
            )
        await executor.shutdown()

    run_async(scenario())


def test_kubeconfig_is_loaded_lazily(
    fake_k8s: FakeKubernetes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    missing = KubernetesExecutor(kubeconfig=str(tmp_path / "nope"))  # constructing needs none
    with pytest.raises(SchedulerError, match="no Kubernetes configuration") as e:
        run_async(missing.prepare([]))
    assert "\n" not in str(e.value) and str(tmp_path / "nope") in str(e.value)

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": fake_k8s.url}}],
                "users": [{"name": "scheduler", "user": {"token": "kube-token"}}],
                "contexts": [
                    {
                        "name": "fake",
                        "context": {"cluster": "fake", "user": "scheduler", "namespace": "x"},
                    }
                ],
                "current-context": "fake",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    executor = KubernetesExecutor(namespace="from-kubeconfig")
    run = make_run(104, "ana", "python-minimal", None)

    async def scenario() -> None:
        ref = await executor.start(run, launch_for(run, "t"))
        assert ref["namespace"] == "from-kubeconfig"
        assert await executor.is_alive({**run, "executor_ref": ref}) is True
        await executor.stop({**run, "executor_ref": ref})
        await executor.shutdown()

    run_async(scenario())


def test_a_job_pinned_to_an_older_version_runs_on_that_versions_image() -> None:
    """The current image may be overridden; an older version keeps its own image."""
    executor = KubernetesExecutor(
        image_overrides={"datascience": "registry.example.com/ds@sha256:" + "a" * 64},
        version_images={"datascience": {"0123456789ab": "registry.example.com/ds:old-pinned"}},
    )
    env = find_environment("datascience")
    assert executor.image_for("datascience", "0123456789ab") == "registry.example.com/ds:old-pinned"
    assert executor.image_for("datascience", "fedcba987654") == f"{env.image}:fedcba987654"
    assert executor.image_for("datascience", env.version).endswith("a" * 64)
    assert executor.image_for("datascience").endswith("a" * 64)
