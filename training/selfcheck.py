"""Self-checks for the training notebooks: is an exercise's answer right? Remember it.

A notebook calls ``check(exercise_id, answer)`` after each exercise. It prints
``✅ Correct: ...`` or ``❌ Not yet: <hint>``, returns ``True`` or ``False``, and records the
attempt: always in the learner's local progress file, and through the platform's portal
(``POST /services/portal/api/training/progress``) when the kernel runs on the platform.

``check`` never raises: a notebook with unanswered exercises still runs top to bottom (under
Papermill too), it just prints ❌ lines. Recording progress is best effort for the same reason.

The list of modules and exercise ids is ``curriculum.json`` beside this file (the portal reads the
same file); the judges live here, and the expected answers about data are computed from the files
in ``data/``, so they stay right if the data is regenerated.

Automated runs: each notebook has a Papermill ``parameters`` cell with ``solutions = False`` and
passes it to ``start``. With ``solutions=True`` every check judges the exercise's own solution
instead of the learner's answer, so ``papermill NB out.ipynb -p solutions True`` (or
``dsml run NB -p solutions=True --wait --input-folder``) must print only ✅ lines.

Exercises about the platform (a scheduled job, a published app) ask the platform when the kernel
has the user's token (``JUPYTERHUB_API_TOKEN``) and a hub URL (``DSML_HUB_URL``, else derived from
``JUPYTERHUB_API_URL``); otherwise they check the learner's files and say they checked offline.

Progress file: ``$DSML_PROGRESS_FILE`` if set, else ``~/.dsml/training-progress.json``. It holds
``{"version": 2, "results": [...], "unsent": [...]}``. ``results`` has one entry per exercise,
``{"notebook", "exercise", "passed", "timestamp"}``: ``passed`` stays true once an attempt passed,
``timestamp`` (UTC, ISO 8601) is the latest attempt. ``unsent`` queues every attempt the portal
has not acknowledged yet (offline, portal down); the next check that reaches the portal sends the
whole queue in one batch (``{"results": [...]}``) and empties it.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import importlib.util
import json
import math
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CURRICULUM = HERE / "curriculum.json"
DATA = HERE / "data"
SALES_CSV = DATA / "sales.csv"
CUSTOMERS_CSV = DATA / "customers.csv"

PROGRESS_ENV = "DSML_PROGRESS_FILE"
DEFAULT_PROGRESS_FILE = Path("~/.dsml/training-progress.json")
PROGRESS_API = "/services/portal/api/training/progress"
SCHEDULER_API = "/services/scheduler/api"
APPS_API = "/services/apps/api"

SEND_TIMEOUT = 2.0
"""Seconds a progress upload may take: an offline notebook must not feel slow."""

PLATFORM_TIMEOUT = 10.0
"""Seconds a check may wait for the scheduler or the apps service (the learner's work)."""

MAX_QUEUE = 500
"""Most unsent attempts kept (the portal's batch limit); the oldest go first."""

SOLUTION_JOB = "training-weekly-revenue"
"""Name of the job the solution of exercise 06.3 schedules (paused) on the platform."""

SOLUTION_APP = "training-squares"
"""Slug of the app the solution of exercise 07.2 publishes on the platform."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it is, what it asks, how an answer is judged, and a right answer.

    ``judge`` takes the learner's answer and returns ``None`` when it is right, or else a hint that
    says what is wrong and what to try. ``solution`` returns an answer the judge accepts.
    """

    id: str
    notebook: str
    title: str
    judge: Callable[[object], str | None]
    solution: Callable[[], object]


# --- the platform, when the kernel runs on it ---


def platform_url() -> str | None:
    """Return the platform's base URL and whether a token is there, or ``None`` when offline."""
    if not os.environ.get("JUPYTERHUB_API_TOKEN"):
        return None
    url = os.environ.get("DSML_HUB_URL", "").strip()
    if not url:
        # JUPYTERHUB_API_URL is <platform>/hub/api: the services live beside /hub
        api = os.environ.get("JUPYTERHUB_API_URL", "").strip().rstrip("/")
        if not api.endswith("/hub/api"):
            return None
        url = api[: -len("/hub/api")]
    return url.rstrip("/") or None


class PlatformError(Exception):
    """A platform API answered with an error status, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api(method: str, path: str, body: object = None, timeout: float = PLATFORM_TIMEOUT) -> Any:
    """Call the platform's API at ``path`` with the kernel's token; return the decoded JSON.

    Raises PlatformError when the platform is not configured, unreachable, or answers >= 400.
    """
    base = platform_url()
    if base is None:
        raise PlatformError("this kernel has no platform token (JUPYTERHUB_API_TOKEN)")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"token {os.environ['JUPYTERHUB_API_TOKEN']}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:200]
        raise PlatformError(f"{method} {path} answered {e.code}: {detail}", e.code) from None
    except (OSError, ValueError) as e:  # refused, timed out, bad URL
        raise PlatformError(f"{method} {path} failed: {e}") from None
    return json.loads(text) if text.strip() else None


def _online() -> bool:
    """Return True when the kernel has a platform token and URL (the services may still be down)."""
    return platform_url() is not None


# --- judging helpers ---


def _unanswered(answer: object) -> str | None:
    """Return a hint if ``answer`` is still the starter (``None`` or ``...``), else ``None``."""
    if answer is None or answer is Ellipsis:
        return "replace the None in the ✏️ cell above with your answer, run it, then run this check."
    return None


def _as_number(answer: object) -> float | None:
    """Return ``answer`` as a float if it is a single number (Python, NumPy or numeric text)."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, str):
        try:
            return float(answer.strip())
        except ValueError:
            return None
    try:
        return float(answer)  # int, float, numpy scalars
    except (TypeError, ValueError):
        return None


def _not_single_value(answer: object) -> str | None:
    """Return a hint if ``answer`` looks like a whole table, column or list instead of one value."""
    kind = type(answer).__name__
    if kind in ("DataFrame", "Series", "ndarray", "list", "tuple", "dict", "Index"):
        return (
            f"your answer is a whole {kind}, the exercise asks for one value. "
            "Pick it out, for example with .idxmax(), .sum() or [0]."
        )
    return None


def _number_judge(
    expected: Callable[[], float], hint: str, tolerance: float = 1e-9
) -> Callable[[object], str | None]:
    """Make a judge that accepts a number within ``tolerance`` of ``expected()``."""

    def judge(answer: object) -> str | None:
        problem = _unanswered(answer) or _not_single_value(answer)
        if problem:
            return problem
        value = _as_number(answer)
        if value is None:
            return f"expected a number, got {answer!r} ({type(answer).__name__})."
        if math.isclose(value, expected(), rel_tol=0, abs_tol=tolerance):
            return None
        return f"{value:g} is not it. {hint}"

    return judge


def _text_judge(expected: Callable[[], str], hint: str) -> Callable[[object], str | None]:
    """Make a judge that accepts text equal to ``expected()``, ignoring case and outer spaces."""

    def judge(answer: object) -> str | None:
        problem = _unanswered(answer) or _not_single_value(answer)
        if problem:
            return problem
        if str(answer).strip().casefold() == expected().casefold():
            return None
        return f"{answer!r} is not it. {hint}"

    return judge


# --- modules 02 and 03: expected answers from the sales data ---


@cache
def _sales() -> list[dict[str, str]]:
    """Return the rows of the training sales data set, read once."""
    with SALES_CSV.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _revenue_by(key: Callable[[dict[str, str]], str]) -> Counter[str]:
    """Return the total revenue of the sales data grouped by ``key(row)``."""
    totals: Counter[str] = Counter()
    for row in _sales():
        totals[key(row)] += float(row["revenue"])
    return totals


def _top_region() -> str:
    """Return the region with the highest total revenue."""
    return _revenue_by(lambda row: row["region"]).most_common(1)[0][0]


def _best_month() -> str:
    """Return the month (``YYYY-MM``) with the highest total revenue."""
    return _revenue_by(lambda row: row["date"][:7]).most_common(1)[0][0]


def _revenue_of(prefix: str) -> float:
    """Return the total revenue of the rows whose date starts with ``prefix`` (a year or month)."""
    return sum(float(row["revenue"]) for row in _sales() if row["date"].startswith(prefix))


def _kernel_python() -> str:
    """Return the major.minor version of the Python running this kernel, e.g. ``"3.11"``."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _judge_python_version(answer: object) -> str | None:
    """Judge exercise 01.3: the kernel's Python version as text ("3.11") or a number (3.11)."""
    problem = _unanswered(answer)
    if problem:
        return problem
    if str(answer).strip() in (_kernel_python(), sys.version.split()[0]):
        return None
    return (
        f"{answer!r} is not the Python of this kernel. Print sys.version_info (after import sys) "
        "and keep the first two numbers, as text like '3.9'."
    )


# --- module 04: a first model ---

TEST_SIZE = 0.25
RANDOM_STATE = 42


@cache
def customer_split() -> tuple[Any, Any, Any, Any]:
    """Return ``X_train, X_test, y_train, y_test`` of the customers data, split as module 04 does.

    Features: tenure, spend, tickets and the plan as a 0/1 column; target: ``churned``. A quarter
    of the rows, stratified by the target, with ``random_state=42``: the notebook's own split.
    """
    import pandas as pd  # the curated kernel has them; the platform's own tests need not
    from sklearn.model_selection import train_test_split

    customers = pd.read_csv(CUSTOMERS_CSV)
    features = customers[["tenure_months", "monthly_spend", "support_tickets"]].assign(
        monthly_plan=(customers["plan"] == "monthly").astype(int)
    )
    return train_test_split(
        features,
        customers["churned"],
        test_size=TEST_SIZE,
        random_state=RANDOM_STATE,
        stratify=customers["churned"],
    )


def _test_rows() -> int:
    """Return the number of rows train_test_split puts in the test set (it rounds up)."""
    with CUSTOMERS_CSV.open(newline="", encoding="utf-8") as f:
        rows = sum(1 for _ in csv.DictReader(f))
    return math.ceil(rows * TEST_SIZE)


def _baseline_accuracy() -> float:
    """Return the test accuracy of always predicting the most frequent class of the training set."""
    _, _, y_train, y_test = customer_split()
    majority = y_train.value_counts().idxmax()
    return float((y_test == majority).mean())


def _judge_predictions(answer: object) -> str | None:
    """Judge exercise 04.3: test-set predictions that beat the baseline by 3 points or more."""
    problem = _unanswered(answer)
    if problem:
        return problem
    _, _, _, y_test = customer_split()
    try:
        predictions = [int(p) for p in list(answer)]  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return (
            f"expected one 0/1 prediction per test row (model.predict(X_test)), got "
            f"{type(answer).__name__}."
        )
    if len(predictions) != len(y_test):
        return (
            f"{len(predictions)} predictions for {len(y_test)} test rows: predict on X_test "
            "(not X_train, not the whole table)."
        )
    accuracy = sum(p == t for p, t in zip(predictions, y_test, strict=True)) / len(y_test)
    baseline = _baseline_accuracy()
    if accuracy >= baseline + 0.03:
        print(f"   test accuracy {accuracy:.3f} against a baseline of {baseline:.3f}")
        return None
    return (
        f"a test accuracy of {accuracy:.3f} does not beat the baseline ({baseline:.3f}) by 3 "
        "points: fit the model on X_train, y_train and predict X_test."
    )


def _solution_predictions() -> list[int]:
    """Return the test predictions of a logistic regression fitted on the training set."""
    from sklearn.linear_model import LogisticRegression

    X_train, X_test, y_train, _ = customer_split()  # noqa: N806 - scikit-learn's names
    model = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    return [int(p) for p in model.predict(X_test)]


# --- module 05: curated environments ---

CANDIDATE_MODULES = ("pandas", "sklearn", "matplotlib", "torch")
"""Module 05 asks which of these cannot be imported in this environment."""


def _environment_name() -> str:
    """Return the curated environment this kernel runs in (``datascience`` if it cannot tell)."""
    return os.environ.get("DSML_ENVIRONMENT") or "datascience"


def _pandas_version() -> str:
    """Return the pandas version installed in this environment."""
    from importlib.metadata import version

    return version("pandas")


def _missing_modules() -> list[str]:
    """Return the candidate modules this environment does not have."""
    return [name for name in CANDIDATE_MODULES if importlib.util.find_spec(name) is None]


def _judge_missing(answer: object) -> str | None:
    """Judge exercise 05.3: the module(s) of the list that this environment cannot import."""
    problem = _unanswered(answer)
    if problem:
        return problem
    given = {answer} if isinstance(answer, str) else set(answer)  # type: ignore[call-overload]
    given = {str(g).strip().casefold() for g in given}
    if given == set(_missing_modules()):
        return None
    return (
        f"{sorted(given)} is not it. Try each import in a cell, or "
        "importlib.util.find_spec(name) is None for the ones that are missing."
    )


# --- module 06: a notebook as a job ---

CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def _notebook_at(path: object) -> tuple[dict | None, str | None]:
    """Return (notebook, None) for the .ipynb at ``path``, or (None, a hint)."""
    if not isinstance(path, str | os.PathLike):
        return None, f"expected the notebook's path as text, got {type(path).__name__}."
    file = Path(path).expanduser()
    if file.suffix != ".ipynb":
        return None, f"{str(path)!r} is not a notebook: its name must end in .ipynb."
    if not file.is_file():
        return None, f"there is no file {str(path)!r} next to this notebook ({Path.cwd()})."
    try:
        nb = json.loads(file.read_text(encoding="utf-8"))
        nb["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{str(path)!r} is not a notebook JSON file: open and save it in JupyterLab."
    return nb, None


def _source(cell: dict) -> str:
    """Return a cell's source as one string."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _parameters_cell(nb: dict) -> str | None:
    """Return a hint unless ``nb`` has a code cell tagged ``parameters`` that assigns a name."""
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and "parameters" in tags:
            try:
                tree = ast.parse(_source(cell))
            except SyntaxError:
                return "the parameters cell is not valid Python: keep it to lines like x = 1."
            if any(isinstance(node, ast.Assign | ast.AnnAssign) for node in tree.body):
                return None
            return "the parameters cell assigns nothing: give it lines such as region = 'North'."
    return (
        "no cell is tagged 'parameters'. Select the cell with your settings, open the property "
        "inspector (the gear icon, top right), add the tag parameters, and save the notebook."
    )


def _judge_job_notebook(answer: object) -> str | None:
    """Judge exercise 06.1: a notebook with a Papermill parameters cell."""
    problem = _unanswered(answer)
    if problem:
        return problem
    nb, problem = _notebook_at(answer)
    return problem or _parameters_cell(nb)  # type: ignore[arg-type]


@cache
def solution_dir() -> Path:
    """Return a private temporary folder for the notebooks the solutions write."""
    return Path(tempfile.mkdtemp(prefix="dsml-training-"))


def _write_notebook(path: Path, cells: list[tuple[str, str, list[str]]]) -> Path:
    """Write an nbformat 4 notebook of ``(cell_type, source, tags)`` cells (datascience kernel)."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "dsml-datascience",
                "display_name": "Python 3.11 (datascience)",
                "language": "python",
            }
        },
        "cells": [
            {"cell_type": kind, "id": f"cell-{n}", "metadata": {"tags": tags}, "source": source}
            | ({"outputs": [], "execution_count": None} if kind == "code" else {})
            for n, (kind, source, tags) in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def _solution_job_notebook() -> str:
    """Write a small parameterised report notebook (the solution of 06.1) and return its path."""
    path = solution_dir() / f"{SOLUTION_JOB}.ipynb"
    if not path.exists():
        _write_notebook(
            path,
            [
                ("markdown", "# Weekly revenue\n\nA report run by the scheduler.", []),
                ("code", 'region = "North"\nweeks = 4', ["parameters"]),
                ("code", 'print(f"Weekly revenue of {region}, last {weeks} weeks")', []),
            ],
        )
    return str(path)


def _judge_cron(answer: object) -> str | None:
    """Judge exercise 06.2: a five-field cron expression for Mondays at 06:00."""
    problem = _unanswered(answer)
    if problem:
        return problem
    fields = str(answer).split()
    if len(fields) != 5:
        return (
            f"a cron expression has 5 fields ({', '.join(CRON_FIELDS)}), {str(answer)!r} has "
            f"{len(fields)}."
        )
    minute, hour, day, month, weekday = fields
    if minute not in ("0", "00") or hour not in ("6", "06"):
        return f"minute {minute!r} and hour {hour!r}: 06:00 is minute 0, hour 6."
    if day != "*" or month != "*":
        return "every Monday of every month: day of month and month are both *."
    if weekday.casefold() not in ("1", "mon"):
        return f"day of week {weekday!r}: Monday is 1 (or MON); 0 and 7 are Sunday."
    return None


def _my_jobs() -> list[dict]:
    """Return the learner's jobs on the platform (every page)."""
    jobs: list[dict] = []
    cursor = None
    while True:
        query = "?" + urllib.parse.urlencode({"cursor": cursor}) if cursor else ""
        page = api("GET", f"{SCHEDULER_API}/jobs{query}")
        jobs.extend(page.get("jobs", []))
        cursor = page.get("next_cursor")
        if not cursor or len(jobs) > 10_000:
            return jobs


def _judge_job(answer: object) -> str | None:
    """Judge exercise 06.3: a job of that name with a cron schedule (or, offline, its notebook)."""
    problem = _unanswered(answer) or _not_single_value(answer)
    if problem:
        return problem
    name = str(answer).strip()
    if _online():
        try:
            jobs = _my_jobs()
        except PlatformError as e:
            return f"the scheduler did not answer ({e}); try again in a minute."
        job = next((j for j in jobs if j.get("name") == name), None)
        if job is None:
            names = ", ".join(sorted(j.get("name", "?") for j in jobs)) or "none"
            return (
                f"you have no job called {name!r} (yours: {names}). Schedule the notebook "
                "(Create Notebook Job in JupyterLab, or dsml schedule in a terminal) and check "
                "Jobs at /services/scheduler/."
            )
        if not job.get("schedule"):
            return f"job {name!r} runs only when asked: give it a cron schedule such as 0 6 * * 1."
        print(f"   the scheduler has {name!r}: {job['schedule']} ({job.get('timezone', 'UTC')})")
        return None
    # offline: the notebook the job would run must be here and ready for parameters
    for folder in (Path.cwd(), solution_dir()):
        nb, _ = _notebook_at(str(folder / f"{name}.ipynb"))
        if nb is not None:
            problem = _parameters_cell(nb)
            if problem is None:
                print(
                    "   (checked offline: this kernel cannot reach the platform, so I checked "
                    f"that {name}.ipynb exists and has a parameters cell)"
                )
            return problem
    return (
        f"offline, I look for {name}.ipynb next to this notebook (a job is named after its "
        "notebook): there is none."
    )


def _solution_job() -> str:
    """Return the name of a scheduled job; on the platform, schedule it (paused) first."""
    if not _online():
        return Path(_solution_job_notebook()).stem
    nb = json.loads(Path(_solution_job_notebook()).read_text(encoding="utf-8"))
    body = {
        "name": SOLUTION_JOB,
        "notebook": nb,
        "notebook_name": f"{SOLUTION_JOB}.ipynb",
        "environment": _environment_name(),
        "schedule": "0 6 * * 1",
        "timezone": "UTC",
        # a schedule to look at, not a weekly run nobody reads: resume it on the Jobs page
        "paused": True,
    }
    try:
        job = next((j for j in _my_jobs() if j.get("name") == SOLUTION_JOB), None)
        if job is None:
            api("POST", f"{SCHEDULER_API}/jobs", body)
        else:
            api("PATCH", f"{SCHEDULER_API}/jobs/{job['id']}", body)
    except PlatformError as e:
        print(f"   (the solution could not schedule its job: {e})")
    return SOLUTION_JOB


# --- module 07: an app ---

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?$")


def run_notebook_here(nb: dict) -> str | None:
    """Run a notebook's code cells in a fresh namespace of this kernel; return a hint if one fails.

    Its outputs (widgets, prints) are captured, not shown. Magics and shell lines are translated
    as IPython does.
    """
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.utils.capture import capture_output

    namespace: dict[str, object] = {"__name__": "__app__"}
    transformer = TransformerManager()
    for number, cell in enumerate(nb["cells"], start=1):
        if cell.get("cell_type") != "code":
            continue
        code = transformer.transform_cell(_source(cell))
        try:
            with capture_output():
                exec(compile(code, f"<cell {number}>", "exec"), namespace)
        except Exception as e:  # the learner's code: report, never raise
            return f"cell {number} of the app fails: {type(e).__name__}: {e}"
    return None


def _judge_app_notebook(answer: object) -> str | None:
    """Judge exercise 07.1: a notebook with a title that uses widgets and runs top to bottom."""
    problem = _unanswered(answer)
    if problem:
        return problem
    nb, problem = _notebook_at(answer)
    if problem:
        return problem
    assert nb is not None
    if not any(
        c.get("cell_type") == "markdown" and _source(c).lstrip().startswith("#")
        for c in nb["cells"]
    ):
        return "give the app a title: a Markdown cell starting with '# ' (Voila shows it)."
    if not any("ipywidgets" in _source(c) for c in nb["cells"] if c.get("cell_type") == "code"):
        return "an app needs controls: import ipywidgets and show at least one widget."
    return run_notebook_here(nb)


def _solution_app_notebook() -> str:
    """Write a tiny widget app (the solution of 07.1) and return its path."""
    path = solution_dir() / f"{SOLUTION_APP}.ipynb"
    if not path.exists():
        _write_notebook(
            path,
            [
                ("markdown", "# Squares\n\nMove the slider.", []),
                (
                    "code",
                    "import ipywidgets as widgets\n\n"
                    "slider = widgets.IntSlider(description='n', min=0, max=20, value=3)\n"
                    "square = widgets.IntText(description='n squared', value=9)\n"
                    "slider.observe(lambda c: setattr(square, 'value', c['new'] ** 2), "
                    "names='value')\n"
                    "widgets.VBox([slider, square])",
                    [],
                ),
            ],
        )
    return str(path)


def _my_apps() -> list[dict]:
    """Return the apps the learner owns on the platform."""
    me = os.environ.get("JUPYTERHUB_USER")
    page = api("GET", f"{APPS_API}/apps?owned=1")
    return [a for a in page.get("apps", []) if not me or a.get("owner") == me]


_published: list[str] = []
"""Slugs given to exercise 07.2 in this kernel: 07.3 looks at the latest first."""


def _judge_app(answer: object) -> str | None:
    """Judge exercise 07.2: an app of mine with that slug (offline: a well-formed slug)."""
    problem = _unanswered(answer) or _not_single_value(answer)
    if problem:
        return problem
    slug = str(answer).strip()
    if not SLUG.match(slug):
        return (
            f"{slug!r} is not an app slug: 1-30 lowercase letters, digits and hyphens, as in "
            "the app's link /services/apps/<slug>/."
        )
    _published.append(slug)
    if not _online():
        print(
            "   (checked offline: this kernel cannot reach the platform, so I checked the slug's "
            "form only; publish from JupyterLab or with dsml publish on the platform)"
        )
        return None
    try:
        apps = _my_apps()
    except PlatformError as e:
        return f"the apps service did not answer ({e}); try again in a minute."
    if any(a.get("slug") == slug for a in apps):
        return None
    mine = ", ".join(sorted(a.get("slug", "?") for a in apps)) or "none"
    return (
        f"you have no app {slug!r} (yours: {mine}). Publish the notebook (Publish as app in "
        "JupyterLab, or dsml publish NOTEBOOK in a terminal) and look at /services/apps/."
    )


def _solution_app() -> str:
    """Return a published app's slug; on the platform, publish the solution app first."""
    if not _online():
        return SOLUTION_APP
    nb = json.loads(Path(_solution_app_notebook()).read_text(encoding="utf-8"))
    body = {
        "notebook": nb,
        "notebook_path": f"{SOLUTION_APP}.ipynb",
        "title": "Squares (training)",
        "description": "The solution of training module 07.",
        "environment": _environment_name(),
        "slug": SOLUTION_APP,
    }
    try:
        api("POST", f"{APPS_API}/apps", body)
    except PlatformError as e:
        print(f"   (the solution could not publish its app: {e})")
    return SOLUTION_APP


def _judge_shared(answer: object) -> str | None:
    """Judge exercise 07.3: the group, user or 'everyone' my app is shared with."""
    problem = _unanswered(answer) or _not_single_value(answer)
    if problem:
        return problem
    name = str(answer).strip()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,254}$", name):
        return f"{name!r} is not a user or group name (or everyone)."
    if not _online():
        print(
            "   (checked offline: this kernel cannot reach the platform, so I checked the name's "
            "form only)"
        )
        return None
    try:
        apps = _my_apps()
    except PlatformError as e:
        return f"the apps service did not answer ({e}); try again in a minute."
    order = {slug: n for n, slug in enumerate(reversed(_published))}
    apps.sort(key=lambda a: order.get(a.get("slug"), len(order)))
    for app in apps:
        shared = app.get("shared") or {}
        if name.casefold() == "everyone" and shared.get("everyone"):
            return None
        if name in shared.get("groups", []) or name in shared.get("users", []):
            return None
    return (
        f"none of your apps is shared with {name!r}. On the app's page (/services/apps/), "
        "share it with a group, a user or everyone, or use dsml publish --share-group GROUP."
    )


def _solution_shared() -> str:
    """Return who the solution app is shared with; on the platform, share it with everyone."""
    if not _online():
        return "everyone"
    try:
        api("POST", f"{APPS_API}/apps/{SOLUTION_APP}/shares", {"everyone": True})
    except PlatformError as e:
        print(f"   (the solution could not share its app: {e})")
    return "everyone"


# --- module 08: code for production ---


def _sample_sales() -> Any:
    """Return a tiny sales table whose revenue per region is known."""
    import pandas as pd

    return pd.DataFrame(
        {
            "region": ["North", "South", "North", "East"],
            "revenue": [10.0, 5.5, 2.5, 7.0],
        }
    )


EXPECTED_SAMPLE = {"East": 7.0, "North": 12.5, "South": 5.5}


def _judge_function(answer: object) -> str | None:
    """Judge exercise 08.1: a documented function giving revenue per region."""
    problem = _unanswered(answer)
    if problem:
        return problem
    if not callable(answer):
        return f"expected the function itself (its name, no parentheses), got {answer!r}."
    if not (getattr(answer, "__doc__", None) or "").strip():
        return 'the function has no docstring: start its body with """What it returns."""'
    try:
        result = answer(_sample_sales())
    except Exception as e:  # the learner's code
        return f"calling it on a small table failed: {type(e).__name__}: {e}"
    try:
        got = {str(k): round(float(v), 6) for k, v in dict(result).items()}
    except (TypeError, ValueError):
        return (
            f"it should return revenue per region (a Series or dict), got {type(result).__name__}."
        )
    if got == EXPECTED_SAMPLE:
        return None
    return (
        f"on a small table it returned {got}, expected {EXPECTED_SAMPLE}: "
        "group by region and sum the revenue."
    )


def revenue_by_region(sales: Any) -> Any:
    """Return the total revenue per region of a sales table (a Series indexed by region)."""
    return sales.groupby("region")["revenue"].sum()


def _broken_revenue_by_region(sales: Any) -> Any:
    """A wrong implementation (counts rows instead of summing revenue) that a good test catches."""
    return sales.groupby("region")["revenue"].count()


def _judge_test(answer: object) -> str | None:
    """Judge exercise 08.2: a test that passes the right function and fails a wrong one."""
    problem = _unanswered(answer)
    if problem:
        return problem
    if not callable(answer):
        return f"expected your test function itself, got {answer!r}."
    try:
        answer(revenue_by_region)
    except AssertionError as e:
        return f"your test fails a correct function: {e or 'an assert is wrong'}."
    except Exception as e:
        return f"your test breaks on a correct function: {type(e).__name__}: {e}"
    try:
        answer(_broken_revenue_by_region)
    except AssertionError:
        return None
    except Exception as e:
        return f"your test should fail with an assert, not {type(e).__name__}: {e}"
    return (
        "your test also passes a wrong function (one that counts rows instead of summing "
        "revenue): assert the exact totals of a small table you build in the test."
    )


def _solution_test() -> Callable[[Callable[[Any], Any]], None]:
    """Return a test of a revenue-per-region function."""

    def test_revenue_by_region(function: Callable[[Any], Any]) -> None:
        """The totals of a small known table are right."""
        totals = dict(function(_sample_sales()))
        assert totals == EXPECTED_SAMPLE, totals

    return test_revenue_by_region


def _judge_logger(answer: object) -> str | None:
    """Judge exercise 08.3: the logger 'weekly_report', at level INFO or finer."""
    import logging

    problem = _unanswered(answer)
    if problem:
        return problem
    if not isinstance(answer, logging.Logger):
        return f"expected a logger (logging.getLogger(...)), got {type(answer).__name__}."
    if answer.name != "weekly_report":
        return f"the logger is called {answer.name!r}: use logging.getLogger('weekly_report')."
    if not answer.isEnabledFor(logging.INFO):
        return "INFO messages are dropped: logger.setLevel(logging.INFO)."
    return None


def _solution_logger() -> object:
    """Return the 'weekly_report' logger at level INFO."""
    import logging

    logger = logging.getLogger("weekly_report")
    logger.setLevel(logging.INFO)
    return logger


def _judge_nbdiff(answer: object) -> str | None:
    """Judge exercise 08.4: nbdime's terminal command for a readable notebook diff."""
    problem = _unanswered(answer) or _not_single_value(answer)
    if problem:
        return problem
    command = str(answer).strip().split()
    if command and command[0] in ("nbdiff", "nbdiff-web"):
        return None
    if command[:2] == ["git", "nbdiff"]:
        return None
    return f"{answer!r} is not it: nbdime's commands start with nb (nbdiff, nbmerge, nbshow)."


# --- the exercises, in the curriculum's order ---

JUDGES: dict[str, tuple[str, Callable[[object], str | None], Callable[[], object]]] = {
    "01.1": (
        "seconds in a week",
        _number_judge(
            lambda: 7 * 24 * 60 * 60,
            "A week has 7 days of 24 hours of 60 minutes of 60 seconds: multiply them.",
        ),
        lambda: 7 * 24 * 60 * 60,
    ),
    "01.2": (
        "sum of the squares of 1 to 10",
        _number_judge(
            lambda: sum(n * n for n in range(1, 11)),
            "range(1, 11) gives 1 to 10: square each number (n ** 2) and add them up with sum().",
        ),
        lambda: sum(n * n for n in range(1, 11)),
    ),
    "01.3": ("the kernel's Python version", _judge_python_version, _kernel_python),
    "02.1": (
        "number of rows in the sales table",
        _number_judge(
            lambda: len(_sales()),
            "len(sales) or sales.shape[0] counts the rows of the whole table.",
        ),
        lambda: len(_sales()),
    ),
    "02.2": (
        "region with the highest revenue",
        _text_judge(
            _top_region,
            "Group by region, sum the revenue, and take the region of the largest total: "
            'sales.groupby("region")["revenue"].sum().idxmax().',
        ),
        _top_region,
    ),
    "02.3": (
        "total revenue in 2025",
        _number_judge(
            lambda: _revenue_of("2025"),
            "Keep the rows whose date is in 2025 (sales['date'].dt.year == 2025), "
            "sum their revenue and round to 2 decimals.",
            tolerance=0.011,
        ),
        lambda: round(_revenue_of("2025"), 2),
    ),
    "03.1": (
        "month with the highest revenue",
        _text_judge(
            _best_month,
            "Look for the highest point of the monthly revenue line and write its month "
            "as 'YYYY-MM', or let pandas find it with monthly.idxmax().",
        ),
        _best_month,
    ),
    "03.2": (
        "revenue of July 2025",
        _number_judge(
            lambda: round(_revenue_of("2025-07")),
            "Move the slider to month 7 and read the total it prints, rounded to whole euros.",
            tolerance=0.5,
        ),
        lambda: round(_revenue_of("2025-07")),
    ),
    "03.3": (
        "value set by an observer",
        _number_judge(
            lambda: 42,
            "Your callback should set doubled.value to twice change['new']; then set "
            "slider.value = 21 and read doubled.value.",
        ),
        lambda: 42,
    ),
    "04.1": (
        "rows in the test set",
        _number_judge(
            _test_rows,
            "len(X_test) counts the rows train_test_split kept aside (a quarter, rounded up).",
        ),
        _test_rows,
    ),
    "04.2": (
        "accuracy of the baseline",
        _number_judge(
            _baseline_accuracy,
            "Fit DummyClassifier() on X_train, y_train and score it on X_test, y_test "
            "(accuracy_score(y_test, baseline.predict(X_test))).",
            tolerance=0.001,
        ),
        _baseline_accuracy,
    ),
    "04.3": ("a model that beats the baseline", _judge_predictions, _solution_predictions),
    "05.1": (
        "the environment of this kernel",
        _text_judge(
            _environment_name,
            "The kernel's name (top right) says it; in code: os.environ['DSML_ENVIRONMENT'].",
        ),
        _environment_name,
    ),
    "05.2": (
        "the pandas version of this environment",
        _text_judge(_pandas_version, "import pandas, then read pandas.__version__ (as text)."),
        _pandas_version,
    ),
    "05.3": ("the module this environment lacks", _judge_missing, _missing_modules),
    "06.1": (
        "a notebook with a parameters cell",
        _judge_job_notebook,
        _solution_job_notebook,
    ),
    "06.2": ("a cron schedule for Mondays at 06:00", _judge_cron, lambda: "0 6 * * 1"),
    "06.3": ("a scheduled job", _judge_job, _solution_job),
    "07.1": ("a notebook ready to be an app", _judge_app_notebook, _solution_app_notebook),
    "07.2": ("a published app", _judge_app, _solution_app),
    "07.3": ("a shared app", _judge_shared, _solution_shared),
    "08.1": ("a small function with a docstring", _judge_function, lambda: revenue_by_region),
    "08.2": ("a test that catches a wrong function", _judge_test, _solution_test),
    "08.3": ("a logger instead of prints", _judge_logger, _solution_logger),
    "08.4": ("a readable notebook diff", _judge_nbdiff, lambda: "nbdiff"),
}


def load_curriculum(path: Path = CURRICULUM) -> dict:
    """Return ``curriculum.json``: ``{"modules": [{"number", "notebook", "title", ...}]}``."""
    return json.loads(path.read_text(encoding="utf-8"))


def _exercises() -> dict[str, Exercise]:
    """Return every exercise of the curriculum, in its order, with its judge and solution."""
    exercises: dict[str, Exercise] = {}
    for module in load_curriculum()["modules"]:
        for exercise_id in module["exercises"]:
            title, judge, solution = JUDGES[exercise_id]
            exercises[exercise_id] = Exercise(
                exercise_id, module["notebook"], title, judge, solution
            )
    return exercises


EXERCISES: dict[str, Exercise] = _exercises()


# --- state of the running notebook ---

_solutions = False


def start(notebook: str, solutions: bool = False) -> None:
    """Begin a notebook: with ``solutions`` True, every check judges the exercise's own solution.

    Called once, near the top of each notebook, with its Papermill parameter ``solutions``.
    """
    global _solutions
    _solutions = bool(solutions)
    if not any(e.notebook == notebook for e in EXERCISES.values()):
        print(f"(no exercises are known for {notebook!r}: is curriculum.json beside selfcheck.py?)")
    if _solutions:
        print("Running with solutions=True: each check judges the exercise's own solution.")


def check(exercise_id: str, answer: object) -> bool:
    """Say whether ``answer`` solves the exercise ``exercise_id``, record it, and return True if so.

    Prints one friendly line: ``✅ Correct: ...`` or ``❌ Not yet: <hint>``. Never raises.
    """
    try:
        exercise = EXERCISES.get(exercise_id)
        if exercise is None:
            known = ", ".join(EXERCISES)
            print(f"❌ Not yet: there is no exercise called {exercise_id!r}. Known ones: {known}.")
            return False
        try:
            if _solutions:
                answer = exercise.solution()
            hint = exercise.judge(answer)
        except Exception as e:  # a judge must never break the learner's notebook
            hint = f"this answer could not be checked ({type(e).__name__}: {e})."
        passed = hint is None
        print(f"✅ Correct: {exercise.title}." if passed else f"❌ Not yet: {hint}")
        record(exercise, passed)
        return passed
    except Exception as e:  # last resort: check() promises not to raise
        print(f"❌ Not yet: the self-check failed ({type(e).__name__}: {e}).")
        return False


# --- progress: the local file and the portal ---


def progress_file() -> Path:
    """Return the path of the learner's progress file (``$DSML_PROGRESS_FILE`` or the default)."""
    return Path(os.environ.get(PROGRESS_ENV) or DEFAULT_PROGRESS_FILE).expanduser()


def load_progress(path: Path | None = None) -> dict:
    """Return the progress recorded so far; an empty record if there is none or it is unreadable."""
    path = path or progress_file()
    data: dict = {"version": 2, "results": [], "unsent": []}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(found, dict) and isinstance(found.get("results"), list):
            data["results"] = found["results"]
            if isinstance(found.get("unsent"), list):
                data["unsent"] = found["unsent"]
    except (OSError, ValueError):
        pass
    return data


def _save(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".training-progress-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def send_unsent(data: dict) -> str | None:
    """Send ``data["unsent"]`` to the portal in one batch; empty it when the portal took it.

    Returns a one-line note when nothing was sent (offline, portal down, refused), else None.
    A refusal for bad input (400, 413) drops the queue: sending it again would fail again.
    """
    if not data["unsent"]:
        return None
    if not _online():
        return "offline: kept to send later"
    try:
        api("POST", PROGRESS_API, {"results": data["unsent"]}, timeout=SEND_TIMEOUT)
    except PlatformError as e:
        if e.status in (400, 413):
            data["unsent"] = []
            return f"the portal refused the queued results, dropped: {e}"
        return f"not sent to the portal yet ({e}); kept to send later"
    data["unsent"] = []
    return None


def record(exercise: Exercise, passed: bool) -> None:
    """Save one attempt locally and send it (with any queued ones) to the portal; never raise."""
    path = progress_file()
    try:
        data = load_progress(path)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        entry = {
            "notebook": exercise.notebook,
            "exercise": exercise.id,
            "passed": passed,
            "timestamp": now,
        }
        for known in data["results"]:
            if known.get("notebook") == exercise.notebook and known.get("exercise") == exercise.id:
                known["passed"] = bool(known.get("passed")) or passed
                known["timestamp"] = now
                break
        else:
            data["results"].append(dict(entry))
        data["unsent"] = (data["unsent"] + [entry])[-MAX_QUEUE:]
        note = send_unsent(data)
        if note and _online():
            print(f"(progress: {note})", file=sys.stderr)
        _save(path, data)
    except Exception as e:  # progress is a convenience; the exercise itself must go on
        print(f"(your progress could not be saved to {path}: {e})", file=sys.stderr)
