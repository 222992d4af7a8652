"""Write the training notebooks' data: ``sales.csv`` and ``customers.csv``, the same on every run.

The training notebooks read only these files (beside them in ``training/data/``), so the whole
``training/`` folder runs anywhere it is copied: in a learner's home and as a job on the platform
(``dsml run NB --input-folder`` sends the notebook's folder with it). Both files are synthetic
(no customer data ever lands in the repository) and committed next to this script.

* ``sales.csv``: two years of made-up daily sales (the shared notebooks' own generator, imported
  from ``shared_notebooks/data/generate.py``): a yearly season, a small upward trend, quieter
  weekends, regions of different size and occasional discounts. Modules 02, 03, 06, 07 and 08
  use it.
* ``customers.csv``: 1,200 made-up subscription customers and whether they cancelled (churned),
  for the first model of module 04. About a quarter churn, so a model must beat 75 % accuracy to
  be better than always guessing "stays".

Run ``python generate.py`` from any folder to rewrite both files beside this script. Only the
standard library is used, and its seeded ``random.Random`` gives the same numbers on every
Python 3 release, so a re-run reproduces the committed files byte for byte.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

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
# The sales data set is the shared notebooks' own: one generator (shared_notebooks/data), its
# output copied here so that training/ needs nothing outside itself when it runs.
_SHARED = Path(__file__).resolve().parents[2] / "shared_notebooks" / "data"
sys.path.insert(0, str(_SHARED))
_spec = importlib.util.spec_from_file_location("shared_generate", _SHARED / "generate.py")
assert _spec is not None and _spec.loader is not None
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)
SEED = _shared.SEED
generate_rows = _shared.generate_rows
write_csv = _shared.write_csv


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


def main(argv: list[str]) -> int:
    """Generate both data sets into ``argv[0]`` (a folder), or beside this script."""
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent
    sales = generate_rows(random.Random(SEED))
    write_csv(sales, folder / "sales.csv", _shared.COLUMNS)
    customers = generate_customers(random.Random(CUSTOMER_SEED))
    write_csv(customers, folder / "customers.csv", CUSTOMER_COLUMNS)
    print(f"wrote {len(sales)} sales rows and {len(customers)} customers to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
