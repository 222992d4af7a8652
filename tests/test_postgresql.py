"""The services on a real PostgreSQL: migrations, the scheduler's API suite, a restart mid-write.

Debian's PostgreSQL runs as a cluster of this module's own (tests/postgres_server.py) on a free
loopback port. Each service gets a database of its own through `DSML_<NAME>_DB_URL`, as in
production, and a platform of this module's own (`dsml up --demo`) runs on them:

* the three services' migrations build exactly the tables their models describe (Alembic's
  autogenerate finds nothing to change), all three in one shared database;
* the scheduler's API tests (tests/test_scheduler_api.py) run again here, on PostgreSQL: this
  module's `platform` fixture replaces the session's for them;
* an app is published, training progress recorded and usage read, from PostgreSQL;
* PostgreSQL restarted (`pg_ctl restart -m fast`) while runs report progress and users write
  jobs and training progress: every accepted write is there afterwards (exactly once), every
  run ends with exactly one final state, and the services keep serving.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from postgres_server import PostgreSQL
from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.exc import ProgrammingError
from test_apps import publish
from test_scheduler_api import (  # noqa: F401
    # the scheduler's API suite: its tests, collected again here, run on PostgreSQL
    FINAL,
    NOTEBOOKS,
    Api,
    analyst,
    scientist,
    test_bad_job_requests,
    test_cancel_during_sleep_stops_worker_and_kernel,
    test_cli_reads_values_by_declared_type,
    test_cli_run_exit_code_and_json_on_failure,
    test_deadline_times_out_and_kills_the_worker,
    test_huge_output_is_refused_with_a_clear_error,
    test_idempotency_key_makes_create_safe_to_retry,
    test_input_call_fails_with_a_clear_error,
    test_kernel_death_is_an_infrastructure_failure_and_is_retried,
    test_latest_successful_run_link_and_metrics,
    test_missing_parameters_cell_injects_at_the_top,
    test_notebook_updates_are_versions_and_can_roll_back,
    test_papermill_failures_mark_the_cell,
    test_papermill_successes,
    test_parameters_are_validated_and_injected_typed,
    test_typed_parameter_inspection,
    test_users_see_only_their_own_jobs,
)

from dsml.apps.models import Base as AppsBase
from dsml.apps.store import Store as AppsStore
from dsml.datadir import DataDir
from dsml.portal.models import Base as PortalBase
from dsml.portal.store import Store as PortalStore
from dsml.scheduler.models import Base as SchedulerBase
from dsml.scheduler.store import Store as SchedulerStore

from conftest import Platform, hub_token, run_async, running_platform

SERVICES = {
    "scheduler": (SchedulerStore, SchedulerBase.metadata),
    "apps": (AppsStore, AppsBase.metadata),
    "portal": (PortalStore, PortalBase.metadata),
}
"""Each service's store and the models its migrations must build."""


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgreSQL]:
    """Debian's PostgreSQL, a cluster of this module's own on a free loopback port."""
    server = PostgreSQL(tmp_path_factory.mktemp("postgresql") / "cluster").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform(
    postgres: PostgreSQL, env_datadir: DataDir, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """A platform whose scheduler, apps service and portal keep their data in PostgreSQL.

    Replaces the session's `platform` in this module, so the scheduler's API tests collected
    here run against it. The URLs reach the services as they do in production: through the
    hub's environment (`DSML_<NAME>_DB_URL`), which `dsml up` inherits when it starts.
    """
    variables = {f"DSML_{name.upper()}_DB_URL": postgres.create_database(name) for name in SERVICES}
    base = tmp_path_factory.mktemp("pg-platform")
    saved = {name: os.environ.get(name) for name in variables}
    with contextlib.ExitStack() as stack:
        os.environ.update(variables)
        try:
            running = stack.enter_context(running_platform(base, base / "data"))
        finally:
            # only the platform started here gets the URLs, not later ones of the session
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        yield running


def test_migrations_build_the_models_in_one_shared_database(postgres: PostgreSQL) -> None:
    url = postgres.create_database("shared")
    for store_class, _ in SERVICES.values():
        store = store_class(url)
        try:
            store.migrate()
            store.migrate()  # a second upgrade finds nothing to do
        finally:
            store.close()
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        for name, (_, metadata) in SERVICES.items():
            assert set(metadata.tables) <= tables, name
        # each service keeps its revision in a version table of its own
        assert {"alembic_version", "apps_alembic_version", "portal_alembic_version"} <= tables
        for name, (_, metadata) in SERVICES.items():
            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection,
                    opts={
                        "compare_type": True,
                        # the other services' tables share the database
                        "include_name": _own_tables(metadata),
                    },
                )
                assert compare_metadata(context, metadata) == [], name
    finally:
        engine.dispose()


def _own_tables(metadata: MetaData):  # type: ignore[no-untyped-def]
    """An Alembic `include_name` hook that keeps only `metadata`'s tables."""

    def include(name: str | None, type_: str, _parents: dict) -> bool:
        return type_ != "table" or name in metadata.tables

    return include


def test_concurrent_attempts_at_one_exercise_all_count(postgres: PostgreSQL) -> None:
    # the portal's store takes 4 threads on PostgreSQL: attempts read-modify-write one row
    store = PortalStore(postgres.create_database("progress"))
    store.migrate()
    at = datetime(2026, 11, 1)
    first = {"notebook": "02-data-with-pandas.ipynb", "exercise": "02.1", "passed": False}
    second = {**first, "exercise": "02.2"}
    batches = [
        [{**first, "at": at}, {**second, "at": at}]
        if i % 2
        else [{**second, "at": at}, {**first, "at": at}, {**first, "at": at}]
        for i in range(120)
    ]
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda batch: store.record_results("newcomer", batch), batches))
        counted = {r["exercise"]: r["attempts"] for r in store.results_of("newcomer")}
    finally:
        store.close()
    assert counted == {"02.1": 60 * 1 + 60 * 2, "02.2": 120}


def test_the_services_keep_their_data_in_postgresql(
    platform: Platform, postgres: PostgreSQL
) -> None:
    for name, (_, metadata) in SERVICES.items():
        tables = {row[0] for row in postgres.sql("SELECT tablename FROM pg_tables", name)}
        assert set(metadata.tables) <= tables, name
        assert not list((platform.datadir.root / name).glob("*.sqlite*")), name


def test_a_job_an_app_progress_and_usage_on_postgresql(platform: Platform) -> None:
    sci = Api(platform, "scientist")
    job = sci.create_job(NOTEBOOKS / "sleeps.ipynb", name="pg sleeps")
    run = sci.wait(sci.start(job, {"seconds": 0}))
    assert run["state"] == "succeeded", run

    apps = httpx.Client(
        base_url=platform.url + "/services/apps/api/",
        headers={"Authorization": f"token {sci.token}"},
        timeout=60,
    )
    r = publish(apps, slug="pg-squares")
    assert r.status_code == 201, r.text
    assert r.json()["version"]["version"] == 1
    assert "pg-squares" in [a["slug"] for a in apps.get("apps").json()["apps"]]

    portal = portal_client(platform, "newcomer")
    attempt = {"notebook": "01-welcome-to-jupyterlab.ipynb", "exercise": "01.1", "passed": True}
    r = portal.post("training/progress", json=attempt)
    assert r.status_code == 201, r.text
    mine = portal.get("training/progress").json()
    assert [(e["exercise"], e["attempts"]) for e in mine["results"]] == [("01.1", 1)]
    usage = portal.get("usage")
    assert usage.status_code == 200, usage.text
    figures = usage.json()
    assert figures["jobs"]["defined"] >= 1 and figures["jobs"]["runs"].get("succeeded", 0) >= 1
    assert figures["apps"]["published"] >= 1


def test_concurrent_publishes_of_one_app_get_consecutive_versions(platform: Platform) -> None:
    """Six publishes of a new slug at once on PostgreSQL: one app, versions 1-6, no error."""
    token = Api(platform, "scientist").token

    def one(_n: int) -> httpx.Response:
        with httpx.Client(
            base_url=platform.url + "/services/apps/api/",
            headers={"Authorization": f"token {token}"},
            timeout=120,
        ) as client:
            return publish(client, slug="pg-race")

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    assert [r.status_code for r in answers] == [201] * 6, [r.text[:200] for r in answers]
    assert sorted(r.json()["version"]["version"] for r in answers) == [1, 2, 3, 4, 5, 6]
    with httpx.Client(
        base_url=platform.url + "/services/apps/api/",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    ) as client:
        versions = client.get("apps/pg-race/versions").json()["versions"]
    assert sorted(v["version"] for v in versions) == [1, 2, 3, 4, 5, 6]


def portal_client(platform: Platform, name: str) -> httpx.Client:
    """A client of the portal's API with `name`'s own token."""
    return httpx.Client(
        base_url=platform.url + "/services/portal/api/",
        headers={"Authorization": f"token {hub_token(platform, name)}"},
        timeout=60,
    )


class Writer(threading.Thread):
    """Sends one kind of write again and again until told to stop; keeps what was accepted.

    `send(i)` makes the i-th request and returns the response and the value to keep if the
    response says the write was accepted.
    """

    def __init__(self, send, accepted_status: int, stop: threading.Event):  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.send = send
        self.accepted_status = accepted_status
        self.stop = stop
        self.accepted: list[object] = []
        self.refused: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                response, value = self.send(i)
            except httpx.HTTPError as e:
                self.refused.append(f"{type(e).__name__}: {e}")
            else:
                if response.status_code == self.accepted_status:
                    self.accepted.append(value(response))
                else:
                    self.refused.append(f"{response.status_code} {response.text[:200]}")
            i += 1


def test_postgresql_restarted_mid_write_loses_nothing(
    platform: Platform, postgres: PostgreSQL
) -> None:
    sci = Api(platform, "scientist")
    learner = portal_client(platform, "newcomer")
    notebook = "02-data-with-pandas.ipynb"

    def attempt(exercise: str):  # type: ignore[no-untyped-def]
        def send(_i: int):  # type: ignore[no-untyped-def]
            body = {"notebook": notebook, "exercise": exercise, "passed": False}
            return learner.post("training/progress", json=body), lambda r: 1

        return send

    def batch(_i: int):  # type: ignore[no-untyped-def]
        body = {"results": [{"notebook": notebook, "exercise": "02.3", "passed": False}] * 20}
        return learner.post("training/progress", json=body), lambda r: r.json()["recorded"]

    def create_job(i: int):  # type: ignore[no-untyped-def]
        body = {
            "name": f"pg restart {i}",
            "notebook": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
            "notebook_name": "empty.ipynb",
            "environment": "python-minimal",
        }
        return sci.client.post("jobs", json=body), lambda r: r.json()["id"]

    # runs that report progress across the restart (capacity 2: one waits in the queue)
    job = sci.create_job(
        NOTEBOOKS / "sleeps.ipynb", name="pg restart sleeps", max_concurrent_runs=3
    )
    runs = [sci.start(job, {"seconds": 3}) for _ in range(3)]
    stop = threading.Event()
    # two writers on one exercise: their attempts must add up, not overwrite each other
    writers = {
        "02.1": [Writer(attempt("02.1"), 201, stop), Writer(attempt("02.1"), 201, stop)],
        "02.2": [Writer(attempt("02.2"), 201, stop)],
        "02.3": [Writer(batch, 201, stop)],
        "jobs": [Writer(create_job, 201, stop)],
    }
    every = [w for group in writers.values() for w in group]
    for w in every:
        w.start()
    deadline = time.monotonic() + 60
    while sci.client.get(f"runs/{runs[0]['id']}").json()["state"] != "running":
        assert time.monotonic() < deadline, "the first run did not start"
        time.sleep(0.1)
    time.sleep(0.5)
    before = {kind: sum(len(w.accepted) for w in group) for kind, group in writers.items()}
    took = postgres.restart()
    time.sleep(1.5)
    stop.set()
    for w in every:
        w.join(60)
    accepted = {kind: sum(len(w.accepted) for w in group) for kind, group in writers.items()}
    refused = [r for w in every for r in w.refused]
    print(
        f"\npg_ctl restart -m fast took {took:.2f} s; writes accepted before it {before}, "
        f"in all {accepted}; refused {len(refused)}"
    )
    assert all(accepted[kind] > before[kind] for kind in accepted), (before, accepted)
    # a write cut after its COMMIT was sent may have been stored: it is refused (a 5xx the
    # client may retry), never run twice (which would show as a 409 or a doubled attempt)
    assert all(r.startswith("5") and '"message"' in r for r in refused), refused[:5]
    # only a call whose COMMIT was on its way when the server cut it fails: at most one per
    # writer (the rest wait for the server and succeed; without that, ~30 of ~500 failed)
    assert len(refused) <= len(every), refused
    unsure = {kind: sum(len(w.refused) for w in group) for kind, group in writers.items()}

    # every run ends, once, with its final state
    finals = [sci.wait(run, timeout=120) for run in runs]
    assert [r["state"] for r in finals] == ["succeeded"] * 3, finals
    ids = ",".join(str(r["id"]) for r in runs)
    events = postgres.sql(
        f"SELECT run_id, state FROM run_events WHERE run_id IN ({ids})", "scheduler"
    )
    final_events = Counter(run_id for run_id, state in events if state in FINAL)
    assert final_events == {r["id"]: 1 for r in runs}, events
    assert postgres.sql(f"SELECT count(*) FROM runs WHERE job_id = {job['id']}", "scheduler") == [
        (3,)
    ]

    # every accepted write is there, exactly once
    stored_attempts = {
        e["exercise"]: e["attempts"]
        for e in learner.get("training/progress").json()["results"]
        if e["notebook"] == notebook
    }
    stored_unsure = {}
    for exercise, weight in (("02.1", 1), ("02.2", 1), ("02.3", 20)):
        sent = sum(sum(w.accepted) for w in writers[exercise])  # type: ignore[misc]
        assert sent <= stored_attempts[exercise] <= sent + weight * unsure[exercise], exercise
        stored_unsure[exercise] = (stored_attempts[exercise] - sent) // weight
    job_ids = {x for w in writers["jobs"] for x in w.accepted}
    stored = postgres.sql(
        "SELECT id FROM jobs WHERE name LIKE 'pg restart %' AND name <> 'pg restart sleeps'",
        "scheduler",
    )
    stored_ids = {row[0] for row in stored}
    assert job_ids <= stored_ids and len(stored_ids - job_ids) <= unsure["jobs"]
    stored_unsure["jobs"] = len(stored_ids - job_ids)
    print(f"refused (5xx) per kind {unsure}, of which stored {stored_unsure}: {refused}")

    # and the services keep serving: a new run, the apps list, the usage figures
    assert sci.wait(sci.start(job, {"seconds": 0}))["state"] == "succeeded"
    apps = httpx.get(
        platform.url + "/services/apps/api/apps",
        headers={"Authorization": f"token {sci.token}"},
        timeout=30,
    )
    assert apps.status_code == 200, apps.text
    assert learner.get("usage").status_code == 200


def test_a_store_call_waits_for_the_server_and_a_bad_one_fails_at_once(
    postgres: PostgreSQL,
) -> None:
    url = postgres.create_database("retry")
    store = SchedulerStore(url)

    def query(sql: str) -> object:
        with store.engine.connect() as connection:
            return connection.execute(text(sql)).scalar()

    async def calls() -> float:
        assert await store.run(query, "SELECT 1") == 1  # leaves a pooled connection
        began = time.monotonic()
        with pytest.raises(ProgrammingError):
            await store.run(query, "SELECT * FROM no_such_table")
        # not retried: the store retries lost connections for up to 30 s, never a bad statement
        assert time.monotonic() - began < 15
        postgres.shut_down()
        starter = threading.Timer(1.0, postgres.start_again)
        starter.start()
        began = time.monotonic()
        try:
            assert await store.run(query, "SELECT 2") == 2
        finally:
            starter.join()
        return time.monotonic() - began

    try:
        seconds = run_async(calls())
    finally:
        store.close()
    # it waited for the server (down for 1 s) instead of failing at once
    assert seconds > 0.9, seconds
    print(f"\na call while PostgreSQL was down for 1 s answered after {seconds:.2f} s")
