"""The worker entry point: run one scheduler run with Papermill and report back over HTTP.

`python -m dsml.scheduler.worker --kernel dsml-NAME` starts the kernel first, then reads its
assignment (run id, token, service URL) as one JSON line on stdin, so a pool can start workers
before runs exist. With `--take-account` (started as root by a scheduler that runs each run as
its owner) it imports what a run needs, waits, becomes the account the assignment names and
only then starts its kernel. An assignment's `environment` (the owner's hub token, where the
hub is) reaches the kernel: set before it starts, or in it when it was started already.
On Kubernetes the assignment comes from the environment
(DSML_RUN_ID, DSML_RUN_TOKEN, DSML_SERVICE_URL). The worker never touches the database: it
fetches its input from the service, posts progress while cells run, and posts the executed
notebook, its HTML and the outcome at the end, also when the run fails.

With `--memory-limit-bytes N` the kernel (and whatever it starts) gets an rlimit on its data
(RLIMIT_DATA: heap and private memory maps), so a notebook that eats memory gets a
MemoryError, or dies, and its run fails naming the limit, instead of the machine swapping or
the OOM killer picking some other process.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dsml import notebooks
from dsml.client import ApiError, Client
from dsml.system_accounts import Account, drop_privileges
from dsml.utils import lower_priority, skip_slow_format_checks

log = logging.getLogger("dsml.worker")

PROGRESS_SECONDS = 0.5
"""Least time between two progress reports of a run (the first cell is always reported)."""

RESULT_RETRIES = 30
"""Attempts to post the result (the service may be restarting); 1 s apart, then 5 s."""


class ServiceClient:
    """The worker's side of the worker API (`/api/worker/runs/<id>/...`)."""

    def __init__(self, service_url: str, run_id: int, token: str):
        self.client = Client(
            f"{service_url.rstrip('/')}/api/worker/runs",
            headers={"X-Dsml-Run-Token": token},
            timeout=30,
        )
        self.run = str(run_id)

    def get_input(self) -> dict[str, Any]:
        """The notebook, parameters and limits of the run."""
        return self.client.call("GET", self.run)

    def progress(self, **fields: Any) -> bool:
        """Report progress; False when the service says the run is over (cancelled, timed out)."""
        try:
            r = self.client.request("POST", f"{self.run}/progress", fields, ok=(409,))
        except ApiError:
            return True  # the service may be restarting; progress is best effort
        return r.status_code != 409

    def html(self, text: str) -> None:
        """Upload the HTML render of the executed notebook (after the result)."""
        try:
            self.client.request("POST", f"{self.run}/html", content=text.encode())
        except ApiError as e:
            log.warning("uploading the HTML failed: %s", e)

    def result(self, payload: dict[str, Any]) -> None:
        """Post the outcome, retrying while the service is unreachable."""
        for attempt in range(RESULT_RETRIES):
            try:
                self.client.request("POST", f"{self.run}/result", payload)
                return
            except ApiError as e:
                if 400 <= e.status < 500:
                    log.error("result refused: %s", e)
                    return
                log.warning("posting the result failed (%s), retrying", e)
            time.sleep(1 if attempt < 10 else 5)
        log.error("could not post the result after %d attempts", RESULT_RETRIES)


class _Tail(logging.Handler):
    """Keep the last lines that Papermill logs (cell outputs) for the run's log tail."""

    def __init__(self, lines: int = 40):
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)

    def emit(self, record: logging.LogRecord) -> None:
        for line in record.getMessage().splitlines():
            self.lines.append(line[:500])

    def text(self) -> str:
        return "\n".join(self.lines)


def describe_bytes(n: int) -> str:
    """A size for people: `512 MiB`, `4 GiB`, or bytes when it is not a whole MiB."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2)):
        if n % size == 0:
            return f"{n // size:,} {unit}"
    return f"{n:,} bytes"


def _memory_limiter(limit: int):  # type: ignore[no-untyped-def]
    """A preexec_fn that caps the kernel's data (RLIMIT_DATA) at `limit` bytes."""

    def apply() -> None:
        # runs in the child between fork and exec: only the soft limit can always be set,
        # and the hard one too, so the notebook cannot raise it back
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        cap = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))

    return apply


def start_kernel(kernel_name: str, cwd: str, memory_limit: int = 0):  # type: ignore[no-untyped-def]
    """Start a kernel and wait until it answers; return its (async) KernelManager.

    nbclient watches an async kernel manager for a dead kernel while a cell runs; with a
    blocking one, a kernel that dies mid-cell would leave the run waiting forever.
    `memory_limit` (bytes, 0 for none) caps the kernel's data memory.
    """
    from jupyter_core.utils import run_sync

    from dsml.kernelclient import SteadyKernelManager

    last: Exception | None = None
    # a kernel can lose the race for its ports (ZMQError: address in use) and never answer:
    # give each try a bounded wait and start a fresh kernel instead of waiting it out
    for _attempt in range(3):
        # its clients' waits for a cell's reply cannot miss it (dsml.kernelclient)
        km = SteadyKernelManager(kernel_name=kernel_name)
        extra = {"preexec_fn": _memory_limiter(memory_limit)} if memory_limit else {}
        run_sync(km.start_kernel)(cwd=cwd, **extra)
        kc = km.client()
        kc.start_channels()
        try:
            run_sync(kc.wait_for_ready)(timeout=40)
            return km
        except (RuntimeError, TimeoutError) as e:
            last = e
            log.warning("kernel %s did not become ready (%s); starting another", kernel_name, e)
            stop_kernel(km)
        finally:
            kc.stop_channels()
    raise RuntimeError(f"kernel {kernel_name} did not start: {last}")


def same_kernel(wanted: str, started: str) -> bool:
    """Whether two kernelspec names run the same command (`dsml-NAME` is the current version,
    `dsml-NAME--VERSION` a pinned one: the same kernel while that version is current)."""
    if wanted == started:
        return True
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        return manager.get_kernel_spec(wanted).argv == manager.get_kernel_spec(started).argv
    except NoSuchKernel:
        return False


def stop_kernel(km) -> None:  # type: ignore[no-untyped-def]
    """Shut a kernel down now (Papermill leaves a kernel it was given running)."""
    from jupyter_core.utils import run_sync

    try:
        run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 - it may be dead already
        pass


def _engine(service: ServiceClient, tail: _Tail, state: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A Papermill engine that reports cell k of n as each cell starts."""
    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):  # type: ignore[no-untyped-def]
            cells = len(nb_man.nb.cells)
            original = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):  # type: ignore[no-untyped-def]
                state["cell"] = cell_index
                # one report per PROGRESS_SECONDS, not per cell: a POST costs ~14 ms, and a
                # notebook of 200 quick cells paid seconds for them
                now = time.monotonic()
                if now - state.get("reported_at", -PROGRESS_SECONDS) >= PROGRESS_SECONDS:
                    state["reported_at"] = now
                    if not service.progress(cell=cell_index, cells=cells, log_tail=tail.text()):
                        log.warning("the service ended this run; stopping")
                        os._exit(3)
                return original(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


def _failing_cell(nb: dict[str, Any]) -> int | None:
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("metadata", {}).get("papermill", {}).get("exception"):
            return index
    return None


def warm_up() -> None:
    """Import Papermill and build the HTML exporter before a run arrives (a pool worker's job)."""
    import nbformat
    import papermill  # noqa: F401

    # the first validation and render compile schemas and highlighting rules: pay that here,
    # before a run arrives, not after it
    nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]))
    notebooks.warm_up()


LOCAL_MEMORY_LIMIT = "the scheduler.job_memory_limit_bytes setting"
"""Where the kernel's memory cap comes from on one machine (`--memory-limit-source`)."""


def _memory_message(limit: int, source: str) -> str:
    """The run's message when its kernel ran out of memory under the job memory limit (the
    run's error names the cell)."""
    return (
        f"the notebook ran out of memory: a run's kernel may use {describe_bytes(limit)} "
        f"({source}); use less memory or ask an admin"
    )


def execute(
    service: ServiceClient,
    km: Any,
    work: Path,
    memory_limit: int = 0,
    memory_source: str = LOCAL_MEMORY_LIMIT,
) -> dict[str, Any]:
    """Run the assigned notebook; return the result payload (never raises for notebook errors).

    `memory_limit` is the kernel's memory cap (bytes, 0 for none), named with `memory_source`
    (where it comes from) in the message of a run that ran out of memory.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    spec = service.get_input()
    source = work / spec["notebook_name"]
    source.write_text(spec["notebook"])
    # the job's input folder, beside the notebook (the service checked each path is relative)
    for item in spec.get("input_files") or []:
        target = (work / item["path"]).resolve()
        if work.resolve() not in target.parents:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(item["content_base64"]))
    output = work / ("output-" + spec["notebook_name"])
    tail = _Tail()
    logging.getLogger("papermill").addHandler(tail)
    state: dict[str, Any] = {"cell": None}
    papermill_engines.register("dsml", _engine(service, tail, state))
    parameters = dict(spec["parameters"])
    parameters["scheduled_for"] = spec["scheduled_for"]
    service.progress(state="running", cell=0, cells=None)
    payload: dict[str, Any] = {"state": "succeeded"}
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            kernel_name=spec["kernel_name"],
            km=km,
            engine_name="dsml",
            execution_timeout=spec.get("cell_timeout_seconds"),
            progress_bar=False,
            log_output=True,
            cwd=str(work),
        )
    except PapermillExecutionError as e:
        payload = {
            "state": "failed",
            "failure_kind": "user",
            "error": {"cell_index": e.cell_index, "name": e.ename, "value": e.evalue},
        }
        if e.ename == "MemoryError" and memory_limit:
            payload["message"] = _memory_message(memory_limit, memory_source)
    except DeadKernelError as e:
        payload = {
            "state": "failed",
            "failure_kind": "infra",
            "error": {"cell_index": state["cell"], "name": "DeadKernelError", "value": str(e)},
            "message": "the kernel died while running the notebook",
        }
        if memory_limit:
            # a C extension that cannot allocate aborts the process rather than raise
            payload["message"] = (
                "the kernel died while running the notebook (it may have gone over the "
                f"job memory limit of {describe_bytes(memory_limit)}, {memory_source})"
            )
    except CellTimeoutError as e:
        payload = {
            "state": "timed_out",
            "failure_kind": "user",
            "error": {"cell_index": state["cell"], "name": "CellTimeoutError", "value": str(e)},
            "message": f"cell {state['cell']} ran longer than {spec.get('cell_timeout_seconds')} s",
        }
    except Exception as e:  # noqa: BLE001 - every other failure still ends the run with a state
        payload = {
            "state": "failed",
            "failure_kind": "user" if "papermill" in type(e).__module__ else "infra",
            "error": {"cell_index": state["cell"], "name": type(e).__name__, "value": str(e)},
        }
    payload["log_tail"] = tail.text()
    if output.exists():
        nb_text = output.read_text()
        limit = spec.get("max_output_bytes") or 0
        if limit and len(nb_text.encode()) > limit:
            payload.update(
                state="failed",
                failure_kind="user",
                error={
                    "cell_index": payload.get("error", {}).get("cell_index"),
                    "name": "OutputTooLarge",
                    "value": f"the executed notebook is {len(nb_text.encode()):,} bytes, over "
                    f"the {limit:,} byte limit; print less or write results to files",
                },
            )
        else:
            payload["notebook"] = nb_text
            if payload.get("error") and payload["error"].get("cell_index") is None:
                payload["error"]["cell_index"] = _failing_cell(json.loads(nb_text))
    return payload


def take_account(assignment: dict[str, Any]) -> None:
    """Become the account the assignment names, for good, with its HOME and USER."""
    fields = assignment["account"]
    account = Account(fields["name"], fields["uid"], fields["gid"], fields["home"])
    os.setgroups(fields.get("groups") or [account.gid])
    drop_privileges(account)
    os.environ.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
    os.chdir(account.home)


def set_kernel_environment(km: Any, environment: dict[str, str]) -> None:
    """Set variables in a kernel started before they were known (a warm owner's kernel)."""
    from jupyter_core.utils import run_sync

    kc = km.client()
    kc.start_channels()
    try:
        code = f"import os as _o; _o.environ.update({environment!r}); del _o"
        run_sync(kc.execute_interactive)(code, silent=True, store_history=False, timeout=30)
    finally:
        kc.stop_channels()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The worker's command line (the executors build it)."""
    parser = argparse.ArgumentParser(prog="dsml-worker")
    parser.add_argument("--kernel", required=True, help="kernelspec to pre-start")
    parser.add_argument(
        "--take-account",
        action="store_true",
        help="wait as root and become the assignment's account before starting the kernel",
    )
    parser.add_argument(
        "--memory-limit-bytes",
        type=int,
        default=0,
        help="cap the kernel's data memory (RLIMIT_DATA) at this many bytes (0: no cap)",
    )
    parser.add_argument(
        "--niceness",
        type=int,
        default=0,
        help="run the worker and its kernel at this CPU niceness (0-19; 0: as started)",
    )
    parser.add_argument(
        "--memory-limit-source",
        default=LOCAL_MEMORY_LIMIT,
        help="where the cap comes from, named in the run's message when the kernel hits it",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the kernel, wait for an assignment, run it, report, shut the kernel down."""
    skip_slow_format_checks()
    args = parse(argv)
    lower_priority(min(args.niceness, 19))
    memory = max(args.memory_limit_bytes, 0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    if args.take_account:
        warm_up()
        line = sys.stdin.readline()
        if not line:
            return 0  # the pool was shut down before a run came
        early = json.loads(line)
        take_account(early)
        os.environ.update(early.get("environment") or {})
    else:
        early = None
    # under the scheduler's data dir when it says so, so nothing of a run hides elsewhere
    work_root = os.environ.get("DSML_WORKER_TMP") or None
    if work_root:
        Path(work_root).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dsml-run-", dir=work_root))
    km = None
    try:
        km = start_kernel(early["kernel_name"] if early else args.kernel, str(work), memory)
        if early is None:
            warm_up()
        if early is not None:
            assignment = early
        elif os.environ.get("DSML_RUN_ID"):
            assignment = {
                "run_id": int(os.environ["DSML_RUN_ID"]),
                "token": os.environ["DSML_RUN_TOKEN"],
                "service_url": os.environ["DSML_SERVICE_URL"],
                "kernel_name": args.kernel,
            }
        else:
            line = sys.stdin.readline()
            if not line:
                return 0  # the pool was shut down before a run came
            assignment = json.loads(line)
            if assignment.get("environment"):
                os.environ.update(assignment["environment"])
                set_kernel_environment(km, assignment["environment"])
        service = ServiceClient(
            assignment["service_url"], assignment["run_id"], assignment["token"]
        )
        if early is None and not same_kernel(assignment["kernel_name"], args.kernel):
            stop_kernel(km)
            km = start_kernel(assignment["kernel_name"], str(work), memory)
        payload = execute(service, km, work, memory, args.memory_limit_source)
        # the run ends now; its HTML render follows (the service renders on demand meanwhile)
        service.result(payload)
        stop_kernel(km)
        km = None
        output = next(work.glob("output-*.ipynb"), None)
        if "notebook" in payload and output is not None:
            try:
                service.html(notebooks.render_html(output))
            except Exception as e:  # noqa: BLE001 - the service can still render it itself
                log.warning("HTML render failed: %s", e)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if km is not None:
            stop_kernel(km)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
