"""Self-checks for the training notebooks: is an exercise's answer right? Remember it.

A notebook calls ``check(exercise_id, answer)`` after each exercise. It prints
``✅ Correct: ...`` or ``❌ Not yet: <hint>``, returns ``True`` or ``False``, and records the
attempt in the learner's progress file, which the platform's portal reads to show how far each
newcomer got.

``check`` never raises: a notebook with unanswered exercises still runs top to bottom (under
Papermill too), it just prints ❌ lines. Saving progress is best effort for the same reason.

The expected answers live here rather than in the notebooks, and the ones about data are computed
from the data file itself (with the standard library only), so they stay right if the data set is
regenerated.

Automated runs: each notebook has a Papermill ``parameters`` cell with ``answer_1``,
``answer_2``, ... (all ``None``) and passes them to ``start``. An answer given that way replaces
the learner's answer to the exercise of the same number, so a test can run a notebook with the
correct answers and expect only ✅ lines.

Progress file: ``$DSML_PROGRESS_FILE`` if set, else ``~/.dsml/training-progress.json``. It holds
``{"version": 1, "results": [{"notebook", "exercise", "passed", "timestamp"}, ...]}`` with one
entry per exercise: ``passed`` stays true once an attempt passed, ``timestamp`` (UTC, ISO 8601)
is the latest attempt.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROGRESS_ENV = "DSML_PROGRESS_FILE"
DEFAULT_PROGRESS_FILE = Path("~/.dsml/training-progress.json")
SALES_CSV = Path(__file__).resolve().parent.parent / "shared_notebooks" / "data" / "sales.csv"


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it is, what it asks, and how its answer is judged.

    ``judge`` takes the learner's answer and returns ``None`` when it is right, or else a hint that
    says what is wrong and what to try.
    """

    id: str
    notebook: str
    title: str
    judge: Callable[[object], str | None]


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


def _number_judge(expected: Callable[[], float], hint: str, tolerance: float = 1e-9):
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


def _text_judge(expected: Callable[[], str], hint: str):
    """Make a judge that accepts text equal to ``expected()``, ignoring case and outer spaces."""

    def judge(answer: object) -> str | None:
        problem = _unanswered(answer) or _not_single_value(answer)
        if problem:
            return problem
        if str(answer).strip().casefold() == expected().casefold():
            return None
        return f"{answer!r} is not it. {hint}"

    return judge


# --- expected answers that come from the data ---


@cache
def _sales() -> list[dict[str, str]]:
    """Return the rows of the shared sales data set, read once."""
    with SALES_CSV.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _revenue_by(key: Callable[[dict[str, str]], str]) -> Counter[str]:
    """Return the total revenue of the sales data grouped by ``key(row)``."""
    totals: Counter[str] = Counter()
    for row in _sales():
        totals[key(row)] += float(row["revenue"])
    return totals


def _by_region(row: dict[str, str]) -> str:
    """Return the region of a sales row."""
    return row["region"]


def _by_month(row: dict[str, str]) -> str:
    """Return the month of a sales row as ``YYYY-MM``."""
    return row["date"][:7]


def _by_year(row: dict[str, str]) -> str:
    """Return the year of a sales row as ``YYYY``."""
    return row["date"][:4]


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


EXERCISES: dict[str, Exercise] = {
    e.id: e
    for e in (
        Exercise(
            "seconds-in-a-week",
            "01-welcome-to-jupyterlab",
            "seconds in a week",
            _number_judge(
                lambda: 7 * 24 * 60 * 60,
                "A week has 7 days of 24 hours of 60 minutes of 60 seconds: multiply them.",
            ),
        ),
        Exercise(
            "sum-of-squares",
            "01-welcome-to-jupyterlab",
            "sum of the squares of 1 to 10",
            _number_judge(
                lambda: sum(n * n for n in range(1, 11)),
                "range(1, 11) gives 1 to 10: square each number (n ** 2) and add them up "
                "with sum().",
            ),
        ),
        Exercise(
            "python-version",
            "01-welcome-to-jupyterlab",
            "the kernel's Python version",
            _judge_python_version,
        ),
        Exercise(
            "row-count",
            "02-data-with-pandas",
            "number of rows in the sales table",
            _number_judge(
                lambda: len(_sales()),
                "len(sales) or sales.shape[0] counts the rows of the whole table.",
            ),
        ),
        Exercise(
            "top-region",
            "02-data-with-pandas",
            "region with the highest revenue",
            _text_judge(
                lambda: _revenue_by(_by_region).most_common(1)[0][0],
                "Group by region, sum the revenue, and take the region of the largest total: "
                'sales.groupby("region")["revenue"].sum().idxmax().',
            ),
        ),
        Exercise(
            "revenue-2025",
            "02-data-with-pandas",
            "total revenue in 2025",
            _number_judge(
                lambda: _revenue_by(_by_year)["2025"],
                "Keep the rows whose date is in 2025 (sales['date'].dt.year == 2025), "
                "sum their revenue and round to 2 decimals.",
                tolerance=0.011,
            ),
        ),
        Exercise(
            "best-month",
            "03-charts-and-widgets",
            "month with the highest revenue",
            _text_judge(
                lambda: _revenue_by(_by_month).most_common(1)[0][0],
                "Look for the highest point of the monthly revenue line and write its month "
                "as 'YYYY-MM', or let pandas find it with monthly.idxmax().",
            ),
        ),
        Exercise(
            "july-2025-revenue",
            "03-charts-and-widgets",
            "revenue of July 2025",
            _number_judge(
                lambda: round(_revenue_by(_by_month)["2025-07"]),
                "Move the slider to month 7 and read the total it prints, rounded to whole euros.",
                tolerance=0.5,
            ),
        ),
        Exercise(
            "observed-value",
            "03-charts-and-widgets",
            "value set by an observer",
            _number_judge(
                lambda: 42,
                "Your callback should set doubled.value to twice change['new']; then set "
                "slider.value = 21 and read doubled.value.",
            ),
        ),
    )
}


# --- state of the running notebook ---

_given: dict[str, object] = {}


def start(notebook: str, *answers: object) -> None:
    """Take the answers a notebook received as Papermill parameters (``answer_1``, ... in order).

    An answer that is not ``None`` replaces the learner's answer to the exercise of the same
    number in ``notebook`` when ``check`` runs. Called once, near the top of each notebook.
    """
    exercises = [e for e in EXERCISES.values() if e.notebook == notebook]
    _given.clear()
    for exercise, answer in zip(exercises, answers, strict=False):
        if answer is not None:
            _given[exercise.id] = answer


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
        answer = _given.get(exercise_id, answer)
        try:
            hint = exercise.judge(answer)
        except Exception as e:  # a judge must never break the learner's notebook
            hint = f"this answer could not be checked ({type(e).__name__}: {e})."
        passed = hint is None
        print(f"✅ Correct: {exercise.title}." if passed else f"❌ Not yet: {hint}")
        _record(exercise, passed)
        return passed
    except Exception as e:  # last resort: check() promises not to raise
        print(f"❌ Not yet: the self-check failed ({type(e).__name__}: {e}).")
        return False


# --- progress file ---


def progress_file() -> Path:
    """Return the path of the learner's progress file (``$DSML_PROGRESS_FILE`` or the default)."""
    return Path(os.environ.get(PROGRESS_ENV) or DEFAULT_PROGRESS_FILE).expanduser()


def load_progress(path: Path | None = None) -> dict:
    """Return the progress recorded so far; an empty record if there is none or it is unreadable."""
    path = path or progress_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            return data
    except (OSError, ValueError):
        pass
    return {"version": 1, "results": []}


def _record(exercise: Exercise, passed: bool) -> None:
    """Save one attempt in the progress file; on any failure, say so in one line and go on."""
    path = progress_file()
    try:
        data = load_progress(path)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        for entry in data["results"]:
            if entry.get("notebook") == exercise.notebook and entry.get("exercise") == exercise.id:
                entry["passed"] = bool(entry.get("passed")) or passed
                entry["timestamp"] = now
                break
        else:
            data["results"].append(
                {
                    "notebook": exercise.notebook,
                    "exercise": exercise.id,
                    "passed": passed,
                    "timestamp": now,
                }
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a temporary file and rename it, so a crash never leaves half a JSON file behind.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".training-progress-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except Exception as e:  # progress is a convenience; the exercise itself must go on
        print(f"(your progress could not be saved to {path}: {e})", file=sys.stderr)
