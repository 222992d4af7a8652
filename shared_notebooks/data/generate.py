"""Write the shared notebooks' data sets, the same files on every run.

The shared and training notebooks read these files, so they are committed next to this script.
They are synthetic (no customer data ever lands in the repository) but shaped like the real thing:

* ``sales.csv``: two years of daily sales (a yearly season, a small upward trend, quieter weekends,
  regions of different size and occasional discounts), written by this module;
* ``survey.csv``: job seekers' True/False answers (``survey.py``), for personas-from-survey;
* ``projects.jsonl.gz``: project design documents and their teams (``projects.py``), for
  project-triage; gzip-compressed (3.5 MB of text in about 350 kB);
* ``tickets.csv``: a Jira export of a year of tickets (``tickets.py``), for delivery-dashboard;
* ``usage-sample.json``: the portal's usage figures (``usage_sample.py``), shown by platform-impact
  when the portal cannot be reached.

Run ``python generate.py`` from any folder to rewrite them beside this script, or pass another
output folder. Only the standard library is used, and its seeded ``random.Random`` gives the same
numbers on every Python 3 release, so a re-run reproduces the committed files byte for byte (the
gzip file's header has no time stamp or name).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import math
import random
import sys
from pathlib import Path

import projects
import survey
import tickets
import usage_sample

SEED = 20240101
FIRST_DAY = dt.date(2024, 1, 1)
LAST_DAY = dt.date(2025, 12, 31)
COLUMNS = ("date", "region", "product", "units", "unit_price", "revenue")

# Share of the company's business done in each region: it scales the units sold there.
REGIONS = {"North": 1.3, "South": 1.0, "East": 0.8, "West": 1.1}

# List price in euros and typical units per order line of each product.
PRODUCTS = {
    "Notebook A5": (4.50, 24),
    "Gel pens (10)": (7.90, 14),
    "Desk lamp": (34.00, 3),
    "Backpack": (49.00, 2),
    "Headphones": (79.00, 2),
    "Coffee mug": (9.50, 8),
    "Stapler": (12.00, 5),
    "Monitor stand": (39.00, 2),
}

# Chance that a product sells in a region on a given day: about 3,500 rows over two years.
DAILY_SALE_CHANCE = 0.15


def season(day: dt.date) -> float:
    """Return the demand multiplier of a day: a yearly wave peaking in summer, lower at weekends."""
    yearly = 1.0 + 0.3 * math.sin(2 * math.pi * (day.timetuple().tm_yday - 150) / 365.25)
    weekend = 0.6 if day.weekday() >= 5 else 1.0
    return yearly * weekend


def trend(day: dt.date) -> float:
    """Return the growth multiplier of a day: +10 % a year from the first day."""
    return 1.0 + 0.10 * (day - FIRST_DAY).days / 365.25


def generate_rows(rng: random.Random) -> list[dict[str, object]]:
    """Return every sales row, in date, region, product order, drawn from ``rng``."""
    rows: list[dict[str, object]] = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        demand = season(day) * trend(day)
        for region, size in REGIONS.items():
            for product, (list_price, typical_units) in PRODUCTS.items():
                if rng.random() >= DAILY_SALE_CHANCE:
                    continue
                mean_units = typical_units * size * demand
                units = max(1, round(rng.gauss(mean_units, mean_units * 0.35)))
                # One line in five is sold at a 5 to 20 % discount.
                discount = rng.choice((0.05, 0.10, 0.15, 0.20)) if rng.random() < 0.2 else 0.0
                unit_price = round(list_price * (1 - discount), 2)
                rows.append(
                    {
                        "date": day.isoformat(),
                        "region": region,
                        "product": product,
                        "units": units,
                        "unit_price": f"{unit_price:.2f}",
                        "revenue": f"{units * unit_price:.2f}",
                    }
                )
        day += dt.timedelta(days=1)
    return rows


def write_csv(
    rows: list[dict[str, object]], path: Path, columns: list[str] | tuple[str, ...]
) -> None:
    """Write ``rows`` to ``path`` as CSV with a header line and Unix line ends."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_all(folder: Path) -> dict[str, int]:
    """Write every data set into ``folder``; return file name -> number of records."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}

    rows = generate_rows(random.Random(SEED))
    write_csv(rows, folder / "sales.csv", COLUMNS)
    counts["sales.csv"] = len(rows)

    rows = survey.generate_rows(random.Random(survey.SEED))
    write_csv(rows, folder / "survey.csv", survey.columns())
    counts["survey.csv"] = len(rows)

    docs = projects.generate(random.Random(projects.SEED))
    text = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in docs)
    # mtime=0 and no file name in the header: the compressed bytes depend on the text alone
    (folder / "projects.jsonl.gz").write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    counts["projects.jsonl.gz"] = len(docs)

    rows = tickets.generate_rows(random.Random(tickets.SEED))
    write_csv(rows, folder / "tickets.csv", tickets.COLUMNS)
    counts["tickets.csv"] = len(rows)

    sample = usage_sample.generate(random.Random(usage_sample.SEED))
    (folder / "usage-sample.json").write_text(json.dumps(sample, indent=1) + "\n", encoding="utf-8")
    counts["usage-sample.json"] = len(sample["history"]["days"])
    return counts


def main(argv: list[str]) -> int:
    """Write every data set into the folder ``argv[0]``, or beside this script."""
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent
    for name, count in write_all(folder).items():
        print(f"wrote {count} records to {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
