"""Write the training notebooks' data: ``sales.csv`` and ``customers.csv``, the same on every run.

The training notebooks read only these files (beside them in ``training/data/``), so the whole
``training/`` folder runs anywhere it is copied: in a learner's home and as a job on the platform
(``dsml run NB --input-folder`` sends the notebook's folder with it). Both files are synthetic
(no customer data ever lands in the repository) and committed next to this script.

* ``sales.csv``: two years of made-up daily sales (the same generator as the shared notebooks'
  ``sales.csv``): a yearly season, a small upward trend, quieter weekends, regions of different
  size and occasional discounts. Modules 02, 03, 06, 07 and 08 use it.
* ``customers.csv``: 1,200 made-up subscription customers and whether they cancelled (churned),
  for the first model of module 04. About a quarter churn, so a model must beat 75 % accuracy to
  be better than always guessing "stays".

Run ``python generate.py`` from any folder to rewrite both files beside this script. Only the
standard library is used, and its seeded ``random.Random`` gives the same numbers on every
Python 3 release, so a re-run reproduces the committed files byte for byte.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
import sys
from pathlib import Path

SEED = 20240101
CUSTOMER_SEED = 20240404
CUSTOMERS = 1200
CUSTOMER_COLUMNS = (
    "customer_id",
    "tenure_months",
    "monthly_spend",
    "support_tickets",
    "plan",
    "churned",
)
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


def generate_customers(rng: random.Random) -> list[dict[str, object]]:
    """Return ``CUSTOMERS`` customer rows drawn from ``rng``.

    Churn is more likely for new customers, many support tickets and the monthly plan, with noise:
    a model can learn it, but not perfectly.
    """
    rows: list[dict[str, object]] = []
    for number in range(1, CUSTOMERS + 1):
        plan = rng.choices(("monthly", "yearly"), weights=(0.6, 0.4))[0]
        tenure = max(1, round(rng.expovariate(1 / 20)))
        tickets = min(12, int(rng.expovariate(1 / 1.5)))
        spend = round(rng.uniform(10, 60) + (15 if plan == "yearly" else 0), 2)
        score = -1.0 + 0.9 * tickets - 0.12 * tenure + (1.2 if plan == "monthly" else -1.2)
        churned = rng.random() < 1 / (1 + math.exp(-score))
        rows.append(
            {
                "customer_id": f"C{number:04d}",
                "tenure_months": tenure,
                "monthly_spend": f"{spend:.2f}",
                "support_tickets": tickets,
                "plan": plan,
                "churned": int(churned),
            }
        )
    return rows


def write_csv(
    rows: list[dict[str, object]], path: Path, columns: tuple[str, ...] = COLUMNS
) -> None:
    """Write ``rows`` to ``path`` as CSV with a header line and Unix line ends."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str]) -> int:
    """Generate both data sets into ``argv[0]`` (a folder), or beside this script."""
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent
    sales = generate_rows(random.Random(SEED))
    write_csv(sales, folder / "sales.csv")
    customers = generate_customers(random.Random(CUSTOMER_SEED))
    write_csv(customers, folder / "customers.csv", CUSTOMER_COLUMNS)
    print(f"wrote {len(sales)} sales rows and {len(customers)} customers to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
