"""The Kubernetes executor: one `batch/v1` Job per run, image = the run's environment's image.

Each run becomes a Job named `<job_name_prefix><run id>` whose single pod runs the worker entry
point (`python -m dsml.scheduler.worker --kernel dsml-<env>`); the worker reads its run id and
the service URL from plain environment variables and its token from a per-run Secret. The Job
carries the run's deadline (`activeDeadlineSeconds`), never retries (`backoffLimit: 0`: the
scheduler owns retries), and is removed by Kubernetes a while after it ends
(`ttlSecondsAfterFinished`). The manifests are built by pure functions (`build_job_manifest`,
`build_secret_manifest`) so they can be checked without a cluster.

The official `kubernetes` client is synchronous: every call runs in a thread so the event loop
never waits on the API server. The client is imported and configured on first use (in-cluster
service account first, then a kubeconfig), so importing this module needs no cluster and
`build_job_manifest` works without the `kubernetes` package installed.

The scheduler's service account needs, in the Jobs' namespace: `create`, `get` and `delete` on
`jobs` (batch), and `create`, `patch` and `delete` on `secrets`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from traitlets import (
    CaselessStrEnum,
    Dict,
    Float,
    Instance,
    Integer,
    TraitError,
    Unicode,
    default,
    validate,
)

from dsml.exceptions import SettingsError
from dsml.kernels import kernel_name
from dsml.scheduler.exceptions import SchedulerError
from dsml.scheduler.executors import Executor, Launch
from dsml.utils import quantity_bytes

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, BatchV1Api, CoreV1Api

MANAGED_BY = "dsml-scheduler"
"""Value of `app.kubernetes.io/managed-by` on every object this executor creates."""

TOKEN_KEY = "token"
"""Key of the run token in the per-run Secret."""

WORKER_CONTAINER = "worker"
"""Name of the one container of a run's pod."""

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NAME_PREFIX = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?-?")
_TERMINAL_CONDITIONS = ("Complete", "Failed")


def label_value(text: str) -> str:
    """`text` as a valid Kubernetes label value (at most 63 characters of [A-Za-z0-9-_.]).

    A value that is already valid is kept as it is. Any other one (say `ana@example.com`) has
    its disallowed characters replaced and gets a short hash of the original appended, so two
    owners whose names differ only in disallowed characters still get different labels.
    """
    if len(text) <= 63 and _LABEL_VALUE.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[: 63 - 1 - len(digest)].strip("-_.")
    return f"{safe}-{digest}" if safe else digest


def job_name(run_id: int, prefix: str = "dsml-run-") -> str:
    """Name of the Job (and stem of the Secret's name) of run `run_id`."""
    return f"{prefix}{run_id}"


def secret_name(run_id: int, prefix: str = "dsml-run-") -> str:
    """Name of the Secret holding the token of run `run_id`."""
    return f"{job_name(run_id, prefix)}-token"


def _as_utc_naive(value: datetime | str) -> datetime:
    """A datetime or an ISO string (the API's `...Z` form) as a naive UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.removesuffix("Z"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def active_deadline_seconds(
    deadline_at: datetime | str | None,
    now: datetime,
    default_seconds: int,
    grace_seconds: int = 0,
) -> int | None:
    """Seconds the Job may run: until the run's deadline plus a grace, else the default.

    The scheduler itself stops a run at its deadline and records it as timed out; the Job's own
    deadline is the backstop for when the scheduler is down, so it gets `grace_seconds` more.
    A deadline already past still gives the Job one second (Kubernetes wants a positive count).
    None (no deadline at all) when the run has none and `default_seconds` is 0.
    """
    if deadline_at is None:
        return default_seconds or None
    remaining = (_as_utc_naive(deadline_at) - _as_utc_naive(now)).total_seconds()
    return max(1, math.ceil(remaining)) + grace_seconds


@dataclass(frozen=True)
class JobSettings:
    """Cluster-side settings shared by every run's Job (the executor fills them from traits)."""

    namespace: str = "default"
    job_name_prefix: str = "dsml-run-"
    service_account: str = ""
    image_pull_policy: str = "IfNotPresent"
    cpu_request: str = "500m"
    cpu_limit: str = ""
    memory_request: str = "1Gi"
    memory_limit: str = "4Gi"
    default_deadline_seconds: int = 24 * 3600
    deadline_grace_seconds: int = 60
    ttl_seconds_after_finished: int = 3600
    run_as_user: int = 1000
    run_as_group: int = 100
    extra_pod_labels: Mapping[str, str] = field(default_factory=dict)


def run_labels(run: Mapping[str, Any]) -> dict[str, str]:
    """Labels of a run's Job, pod and Secret: who manages it, whose it is, which job and run."""
    return {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": "worker",
        "dsml.io/owner": label_value(str(run["owner"])),
        "dsml.io/job-id": str(run["job_id"]),
        "dsml.io/run-id": str(run["id"]),
        "dsml.io/environment": label_value(str(run["environment"])),
    }


def _resources(settings: JobSettings) -> dict[str, dict[str, str]]:
    requests = {"cpu": settings.cpu_request, "memory": settings.memory_request}
    limits = {"cpu": settings.cpu_limit, "memory": settings.memory_limit}
    out = {
        "requests": {k: v for k, v in requests.items() if v},
        "limits": {k: v for k, v in limits.items() if v},
    }
    return {k: v for k, v in out.items() if v}


KERNEL_MEMORY_SHARE = 0.9
"""The share of the pod's memory limit the kernel may use (RLIMIT_DATA, `--memory-limit-bytes`):
the rest is the worker's, so a notebook that eats memory gets a MemoryError and its run a
message naming the limit, not an OOM-killed pod."""


def worker_command(environment: str, memory_limit: str) -> list[str]:
    """The worker's command in a run's pod; with a memory limit the kernel is capped below it."""
    command = ["python", "-m", "dsml.scheduler.worker", "--kernel", kernel_name(environment)]
    if memory_limit:
        cap = int(quantity_bytes(memory_limit) * KERNEL_MEMORY_SHARE)
        command += [
            f"--memory-limit-bytes={cap}",
            f"--memory-limit-source={KERNEL_MEMORY_SHARE:.0%} of the job pod's memory limit, "
            f"{memory_limit}",
        ]
    return command


def build_job_manifest(
    run: Mapping[str, Any],
    *,
    image: str,
    service_url: str,
    settings: JobSettings | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The `batch/v1` Job that runs `run` (a run as the store returns it) in `image`.

    `service_url` is where the worker reaches the scheduler; `now` (naive UTC, default the
    current time) turns the run's `deadline_at` into `activeDeadlineSeconds`. The token is not
    in the manifest: the pod reads it from the Secret of `build_secret_manifest`.
    """
    settings = settings or JobSettings()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    run_id = int(run["id"])
    environment = str(run["environment"])
    labels = run_labels(run)
    # the owner's real name, which a label may not be able to hold
    annotations = {"dsml.io/owner": str(run["owner"])}
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": worker_command(environment, settings.memory_limit),
        "env": [
            {"name": "DSML_RUN_ID", "value": str(run_id)},
            {"name": "DSML_SERVICE_URL", "value": service_url},
            {
                "name": "DSML_RUN_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": secret_name(run_id, settings.job_name_prefix),
                        "key": TOKEN_KEY,
                    }
                },
            },
        ],
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    resources = _resources(settings)
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # the worker talks only to the scheduler: no API token, no service env var flood
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.run_as_user,
            "runAsGroup": settings.run_as_group,
            "fsGroup": settings.run_as_group,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    spec: dict[str, Any] = {
        "backoffLimit": 0,  # the scheduler owns retries; a failed pod is a failed run
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "template": {
            "metadata": {
                "labels": {**settings.extra_pod_labels, **labels},
                "annotations": dict(annotations),
            },
            "spec": pod_spec,
        },
    }
    deadline = active_deadline_seconds(
        run.get("deadline_at"),
        now,
        settings.default_deadline_seconds,
        settings.deadline_grace_seconds,
    )
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run_id, settings.job_name_prefix),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to a created Job (its metadata must hold the uid the server gave it).

    No `blockOwnerDeletion`: setting it needs `update` on `jobs/finalizers` where the
    OwnerReferencesPermissionEnforcement admission plugin runs, and nothing needs the block.
    """
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job["metadata"]["name"],
        "uid": job["metadata"]["uid"],
    }


def build_secret_manifest(
    run: Mapping[str, Any],
    token: str,
    *,
    settings: JobSettings | None = None,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Secret holding the token of `run`; with `owner` (a created Job) it is owned by it."""
    settings = settings or JobSettings()
    metadata: dict[str, Any] = {
        "name": secret_name(int(run["id"]), settings.job_name_prefix),
        "namespace": settings.namespace,
        "labels": run_labels(run),
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "immutable": True,  # the token never changes; metadata (the owner) still may
        "metadata": metadata,
        "stringData": {TOKEN_KEY: token},
    }


def _api_message(e: Exception) -> str:
    """One line from an ApiException: the status code and the API server's own message."""
    status = getattr(e, "status", None)
    body = getattr(e, "body", None)
    message = getattr(e, "reason", None) or str(e).splitlines()[0]
    if body:
        try:
            message = json.loads(body).get("message") or message
        except (ValueError, AttributeError):
            pass
    return f"{status} {message}" if status else str(message)


def _status(e: Exception) -> int | None:
    return getattr(e, "status", None)


class KubernetesExecutor(Executor):
    """Run each job as a Kubernetes Job whose image is the run's environment's image."""

    name = "kubernetes"

    namespace = Unicode(
        config=True, help="Namespace of the run Jobs (default: POD_NAMESPACE, else default)."
    )

    @default("namespace")
    def _namespace(self) -> str:
        return os.environ.get("POD_NAMESPACE") or "default"

    job_name_prefix = Unicode(
        "dsml-run-",
        config=True,
        help="Start of every Job's name, before the run id (distinct per deployment sharing "
        "a namespace).",
    )

    @validate("job_name_prefix")
    def _check_prefix(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if len(value) > 40 or not _NAME_PREFIX.fullmatch(value):
            raise TraitError(
                f"job_name_prefix {value!r} is not allowed: use at most 40 lower-case letters, "
                "digits and '-', starting with a letter (e.g. 'dsml-run-')"
            )
        return value

    @validate("memory_request", "memory_limit")
    def _check_memory(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        if value:
            try:
                quantity_bytes(value)
            except SettingsError as e:
                raise TraitError(f"{proposal['trait'].name}: {e}") from None
        return value

    service_account = Unicode(
        "", config=True, help="serviceAccountName of the run pods (empty: the namespace default)."
    )
    image_overrides = Dict(
        value_trait=Unicode(),
        config=True,
        help="Image per environment name that replaces the environment's `<image>:<lock hash>`.",
    )
    version_images = Dict(
        value_trait=Dict(value_trait=Unicode()),
        config=True,
        help="Image per environment name and pinned version, for jobs pinned to an older "
        "environment version whose image is not `<image>:<version>` (e.g. pinned by digest).",
    )
    image_pull_policy = CaselessStrEnum(
        ["Always", "IfNotPresent", "Never"],
        "IfNotPresent",
        config=True,
        help="imagePullPolicy of the worker container.",
    )
    cpu_request = Unicode("500m", config=True, help="CPU a run requests, in cores ('500m', '2').")
    cpu_limit = Unicode("", config=True, help="CPU a run may use at most, in cores (empty: none).")
    memory_request = Unicode(
        "1Gi", config=True, help="Memory a run requests, in bytes with a suffix ('1Gi')."
    )
    memory_limit = Unicode(
        "4Gi",
        config=True,
        help="Memory a run may use at most, in bytes with a suffix (empty: none).",
    )
    default_deadline_seconds = Integer(
        24 * 3600,
        config=True,
        help="activeDeadlineSeconds of a run whose job has no deadline, in seconds (0: none).",
    )
    deadline_grace_seconds = Integer(
        60,
        config=True,
        help="Seconds a Job may outlive its run's deadline (the scheduler stops it first).",
    )
    ttl_seconds_after_finished = Integer(
        3600, config=True, help="Seconds Kubernetes keeps a finished Job (and its pod) around."
    )
    run_as_user = Integer(
        1000, config=True, help="UID the worker runs as (the docker-stacks images' jovyan: 1000)."
    )
    run_as_group = Integer(
        100, config=True, help="GID the worker runs as, also its fsGroup (docker-stacks: 100)."
    )
    extra_pod_labels = Dict(
        value_trait=Unicode(),
        config=True,
        help="More labels for run pods, e.g. the one a NetworkPolicy lets reach the scheduler.",
    )
    kubeconfig = Unicode(
        "",
        config=True,
        help="kubeconfig file(s) used outside a cluster (default: KUBECONFIG, else "
        "~/.kube/config).",
    )
    kube_context = Unicode(
        "", config=True, help="kubeconfig context to use (empty: the file's current context)."
    )
    request_timeout_seconds = Float(
        30.0, config=True, help="Seconds one Kubernetes API call may take before it fails."
    )
    k8s_configuration = Instance(
        "kubernetes.client.Configuration",
        allow_none=True,
        help="A ready client Configuration; None loads in-cluster config, else the kubeconfig.",
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._api_client: ApiClient | None = None
        self._lock = threading.Lock()

    # configuration and client

    def settings(self) -> JobSettings:
        """The manifest settings this executor's traits give."""
        return JobSettings(
            namespace=self.namespace,
            job_name_prefix=self.job_name_prefix,
            service_account=self.service_account,
            image_pull_policy=self.image_pull_policy,
            cpu_request=self.cpu_request,
            cpu_limit=self.cpu_limit,
            memory_request=self.memory_request,
            memory_limit=self.memory_limit,
            default_deadline_seconds=self.default_deadline_seconds,
            deadline_grace_seconds=self.deadline_grace_seconds,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            run_as_user=self.run_as_user,
            run_as_group=self.run_as_group,
            extra_pod_labels=dict(self.extra_pod_labels),
        )

    def image_for(self, environment: str, version: str | None = None) -> str:
        """The image of `environment` at `version` (None: the current lock's).

        A pinned older version keeps that version's image: `version_images`, else
        `<image>:<version>`; the current version's image is `image_overrides`' when given.
        """
        pinned = self.version_images.get(environment) or {}
        if version and version in pinned:
            return pinned[version]
        from dsml.environments import find_environment

        env = find_environment(environment)
        current = not version or version == env.version
        if current and environment in self.image_overrides:
            return self.image_overrides[environment]
        return f"{env.image}:{version}" if version else env.image_tag

    def load_configuration(self) -> Any:
        """The client Configuration: the given one, in-cluster config, or the kubeconfig."""
        if self.k8s_configuration is not None:
            return self.k8s_configuration
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
            return configuration
        except config.ConfigException:
            pass
        path = self.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            config.load_kube_config(
                config_file=path,
                context=self.kube_context or None,
                client_configuration=configuration,
                persist_config=False,  # a service must not rewrite someone's kubeconfig
            )
        except (config.ConfigException, OSError, ValueError) as e:
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise SchedulerError(
                "no Kubernetes configuration: not in a pod (KUBERNETES_SERVICE_HOST unset) and "
                f"kubeconfig {path} is unusable ({detail}); run the scheduler in the cluster or "
                "set KUBECONFIG or KubernetesExecutor.kubeconfig",
                status=503,
            ) from None
        return configuration

    def _client(self) -> ApiClient:
        with self._lock:
            if self._api_client is None:
                from kubernetes import client

                self._api_client = client.ApiClient(self.load_configuration())
            return self._api_client

    def _batch(self) -> BatchV1Api:
        from kubernetes import client

        return client.BatchV1Api(self._client())

    def _core(self) -> CoreV1Api:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call a client method and return the JSON it answered, as plain dicts.

        `_preload_content=False` skips the client's model classes: the JSON is the same in
        every client version, and a Foreground delete answers with the Job itself, which
        kubernetes 37 fails to read as the `V1Status` it expects (a pydantic error raised
        after the Job was deleted).
        """
        import urllib3

        try:
            response = method(
                *args,
                _preload_content=False,
                _request_timeout=self.request_timeout_seconds,
                **kwargs,
            )
        except urllib3.exceptions.HTTPError as e:
            host = method.__self__.api_client.configuration.host
            raise SchedulerError(
                f"the Kubernetes API server {host} did not answer: {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else 'no detail'}",
                status=502,
            ) from None
        try:
            data = response.data
        finally:
            response.release_conn()
        return json.loads(data) if data else {}

    # the executor contract

    def _warm_up(self) -> None:
        """Import the client's API classes and build its Job and Secret models once.

        kubernetes>=37 imports its API modules on first use and checks request bodies with
        pydantic models built on first use: a second or two of CPU that would otherwise land
        on the first run's start.
        """
        from kubernetes import client

        self._core()  # each imports its API module
        self._batch()
        sample = {"id": 0, "job_id": 0, "owner": "warm-up", "environment": "warm-up"}
        settings = self.settings()
        for model, manifest in (
            (
                client.V1Job,
                build_job_manifest(sample, image="x", service_url="", settings=settings),
            ),
            (client.V1Secret, build_secret_manifest(sample, "x", settings=settings)),
        ):
            from_dict = getattr(model, "from_dict", None)  # older clients have none, need none
            if from_dict is not None:
                from_dict(manifest)

    async def prepare(self, environments: list[str]) -> None:
        """Load the Kubernetes configuration and client, and log every environment's image."""
        await asyncio.to_thread(self._client)
        await asyncio.to_thread(self._warm_up)
        for environment in environments:
            try:
                image = await asyncio.to_thread(self.image_for, environment)
            except Exception as e:  # noqa: BLE001 - a bad environment must not stop the service
                self.log.warning("environment %s has no image: %s", environment, e)
                continue
            self.log.info("runs in environment %s use image %s", environment, image)

    def _start(self, run: dict[str, Any], launch: Launch) -> dict[str, Any]:
        settings = self.settings()
        image = self.image_for(run["environment"], run.get("environment_version"))
        job = build_job_manifest(
            run,
            image=image,
            service_url=launch.service_url,
            settings=settings,
        )
        secret = build_secret_manifest(run, launch.token, settings=settings)
        namespace, name = settings.namespace, job["metadata"]["name"]
        secret_id = secret["metadata"]["name"]
        from kubernetes.client import ApiException

        # The Secret goes first: a pod whose Secret does not exist yet stalls in
        # CreateContainerConfigError until the kubelet retries, adding seconds to every start.
        # Right after the Job exists the Secret gets it as owner, so the garbage collector
        # deletes it with the Job (after ttlSecondsAfterFinished, or on stop); should that
        # patch fail, `stop` still deletes the Secret by name.
        try:
            self._call(self._core().create_namespaced_secret, namespace, secret)
        except ApiException as e:
            if _status(e) == 409:
                raise SchedulerError(
                    f"Secret {namespace}/{secret_id} exists already: another scheduler uses this "
                    "namespace and job_name_prefix, or it is left from an earlier database; "
                    "give each deployment its own KubernetesExecutor.job_name_prefix",
                    status=409,
                ) from None
            raise SchedulerError(
                f"creating Secret {namespace}/{secret_id} failed: {_api_message(e)}", status=502
            ) from None
        try:
            created = self._call(self._batch().create_namespaced_job, namespace, job)
        except (ApiException, SchedulerError) as e:
            try:
                self._delete_quietly(self._core().delete_namespaced_secret, secret_id, namespace)
            except SchedulerError as cleanup:
                self.log.warning("%s; delete it by hand", cleanup)
            if isinstance(e, SchedulerError):
                raise
            if _status(e) == 409:
                raise SchedulerError(
                    f"Job {namespace}/{name} exists already; give each deployment its own "
                    "KubernetesExecutor.job_name_prefix",
                    status=409,
                ) from None
            raise SchedulerError(
                f"creating Job {namespace}/{name} failed: {_api_message(e)}", status=502
            ) from None
        try:
            self._call(
                self._core().patch_namespaced_secret,
                secret_id,
                namespace,
                {"metadata": {"ownerReferences": [owner_reference(created)]}},
            )
        except (ApiException, SchedulerError) as e:
            self.log.warning(
                "Secret %s/%s did not get its Job as owner (%s); stop deletes it",
                namespace,
                secret_id,
                _api_message(e) if isinstance(e, ApiException) else e,
            )
        return {"namespace": namespace, "name": name, "uid": created["metadata"]["uid"]}

    async def start(self, run: dict[str, Any], launch: Launch) -> dict[str, Any]:
        """Create the run's Secret and Job; return {"namespace", "name", "uid"} of the Job."""
        return await asyncio.to_thread(self._start, run, launch)

    def _ref(self, run: dict[str, Any]) -> dict[str, Any] | None:
        return run.get("executor_ref") or None

    def _is_alive(self, ref: dict[str, Any]) -> bool:
        from kubernetes.client import ApiException

        try:
            job = self._call(self._batch().read_namespaced_job, ref["name"], ref["namespace"])
        except ApiException as e:
            if _status(e) == 404:
                return False
            # raising (not answering False) keeps a run from being marked lost on an API hiccup
            raise SchedulerError(
                f"reading Job {ref['namespace']}/{ref['name']} failed: {_api_message(e)}",
                status=502,
            ) from None
        if ref.get("uid") and job.get("metadata", {}).get("uid") != ref["uid"]:
            return False  # a newer Job reuses the name; ours is gone
        for condition in (job.get("status") or {}).get("conditions") or []:
            if condition.get("type") in _TERMINAL_CONDITIONS and condition.get("status") == "True":
                return False
        return True

    async def is_alive(self, run: dict[str, Any]) -> bool:
        """Whether the run's Job exists and has not ended (no Complete or Failed condition)."""
        ref = self._ref(run)
        if not ref:
            return False
        return await asyncio.to_thread(self._is_alive, ref)

    def _delete_quietly(self, method: Callable[..., Any], name: str, namespace: str) -> None:
        from kubernetes.client import ApiException

        try:
            self._call(method, name, namespace, propagation_policy="Foreground")
        except ApiException as e:
            if _status(e) != 404:
                raise SchedulerError(
                    f"deleting {namespace}/{name} failed: {_api_message(e)}", status=502
                ) from None

    def _stop(self, ref: dict[str, Any]) -> None:
        name, namespace = ref["name"], ref["namespace"]
        # Foreground: the Job goes only once its pod (and the kernel in it) is gone
        self._delete_quietly(self._batch().delete_namespaced_job, name, namespace)
        self._delete_quietly(self._core().delete_namespaced_secret, f"{name}-token", namespace)

    async def stop(self, run: dict[str, Any]) -> None:
        """Delete the run's Job (Foreground: its pod first) and its Secret; gone already is fine.

        A run without a stored reference (the scheduler stopped between creating the Job and
        recording it) is found by its Job name in this executor's namespace.
        """
        ref = self._ref(run) or {
            "namespace": self.namespace,
            "name": job_name(int(run["id"]), self.job_name_prefix),
        }
        await asyncio.to_thread(self._stop, ref)

    async def shutdown(self) -> None:
        """Close the API client's connections; the run Jobs keep running in the cluster."""
        with self._lock:
            api_client, self._api_client = self._api_client, None
        if api_client is not None:
            await asyncio.to_thread(api_client.close)
