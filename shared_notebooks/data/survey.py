"""The job-seekers survey: a few thousand made-up respondents answering True/False questions.

Each respondent belongs to one of five hidden personas (the notebook is not told which) and answers
each question True with that persona's probability, so k-means on the answers can find the
personas again and the elbow of its inertia curve sits at k = 5. The questions pull against each
other on purpose ("I would wait for the perfect job" against "I need a job within a month").
"""

from __future__ import annotations

import random

SEED = 20240202
RESPONDENTS = 3000

# Question id -> (the statement respondents answered True or False to, a short label for cards).
QUESTIONS: dict[str, tuple[str, str]] = {
    "perfect_job": (
        "I would rather wait for the perfect job than take the first offer",
        "waits for the perfect job",
    ),
    "job_quickly": ("I need a job within the next month", "needs a job quickly"),
    "salary_first": ("Salary matters more to me than what the work is", "puts salary first"),
    "purpose": ("I want my work to serve a purpose I believe in", "wants a purpose"),
    "remote": ("I want to work from home most days", "wants remote work"),
    "flexible_hours": ("I need flexible working hours", "needs flexible hours"),
    "part_time_ok": ("A part-time job would suit me", "would work part time"),
    "permanent_only": ("I only consider permanent contracts", "permanent contracts only"),
    "large_employer": ("I prefer a large, established employer", "prefers a large employer"),
    "startup_ok": ("I would join a start-up", "would join a start-up"),
    "wants_training": ("I want my next employer to train me", "wants training"),
    "change_field": ("I want to change field", "wants to change field"),
    "lower_pay_ok": (
        "I would accept lower pay to learn something new",
        "accepts lower pay to learn",
    ),
    "relocate": ("I would move to another city for the right job", "would relocate"),
    "short_commute": ("A short commute is a must", "needs a short commute"),
    "promotion_path": ("A clear promotion path matters to me", "wants a promotion path"),
    "temporary_ok": ("I would accept a temporary contract", "accepts a temporary contract"),
    "cv_help": ("I want help with my CV and interviews", "wants CV and interview help"),
}

# The hidden personas: their share of respondents and the answers that set them apart
# (question -> chance of answering True); every other question is answered True at NEUTRAL.
NEUTRAL = 0.2
PERSONAS: dict[str, tuple[float, dict[str, float]]] = {
    "dream-job seeker": (
        0.20,
        {
            "perfect_job": 0.9,
            "purpose": 0.85,
            "promotion_path": 0.75,
            "relocate": 0.7,
            "startup_ok": 0.6,
            "job_quickly": 0.05,
            "temporary_ok": 0.05,
        },
    ),
    "needs a job now": (
        0.24,
        {
            "job_quickly": 0.92,
            "salary_first": 0.8,
            "temporary_ok": 0.85,
            "cv_help": 0.8,
            "part_time_ok": 0.6,
            "perfect_job": 0.05,
            "permanent_only": 0.1,
        },
    ),
    "career switcher": (
        0.20,
        {
            "change_field": 0.9,
            "wants_training": 0.9,
            "lower_pay_ok": 0.8,
            "startup_ok": 0.65,
            "cv_help": 0.6,
            "salary_first": 0.05,
            "large_employer": 0.1,
        },
    ),
    "balance first": (
        0.19,
        {
            "remote": 0.9,
            "flexible_hours": 0.9,
            "part_time_ok": 0.75,
            "short_commute": 0.8,
            "relocate": 0.03,
            "promotion_path": 0.1,
        },
    ),
    "security seeker": (
        0.17,
        {
            "permanent_only": 0.92,
            "large_employer": 0.9,
            "salary_first": 0.6,
            "promotion_path": 0.7,
            "short_commute": 0.6,
            "startup_ok": 0.04,
            "temporary_ok": 0.04,
        },
    ),
}
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")


def generate_rows(rng: random.Random) -> list[dict[str, object]]:
    """Return one row per respondent (id, age band, months searching, one 0/1 column a question)."""
    names = list(PERSONAS)
    shares = [PERSONAS[n][0] for n in names]
    rows: list[dict[str, object]] = []
    for number in range(1, RESPONDENTS + 1):
        persona = rng.choices(names, weights=shares)[0]
        chances = PERSONAS[persona][1]
        # who is still searching after long differs by persona: it makes the cards more telling
        months = {"needs a job now": 1, "dream-job seeker": 6, "career switcher": 4}.get(persona, 3)
        row: dict[str, object] = {
            "respondent": f"R{number:05d}",
            "age_band": rng.choices(AGE_BANDS, weights=(2, 4, 3, 2, 1))[0],
            "months_searching": max(0, round(rng.gauss(months, months / 2))),
        }
        for question in QUESTIONS:
            row[question] = int(rng.random() < chances.get(question, NEUTRAL))
        rows.append(row)
    return rows


def columns() -> list[str]:
    """The CSV header, in order."""
    return ["respondent", "age_band", "months_searching", *QUESTIONS]
