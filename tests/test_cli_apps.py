"""`dsml publish` and `dsml apps ...` as a data scientist runs them, against the real platform.

Each command is run as a process with the user's hub token in JUPYTERHUB_API_TOKEN (as inside
JupyterLab) and checked against what the apps service then says. Which files a publish takes
along (`dsml.notebooks.files_named_by`, the rule JupyterLab's publish shares) is checked on
folders of its own first.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import nbformat
import pytest

from dsml.exceptions import DsmlError
from dsml.kernels import kernel_name
from dsml.notebooks import files_named_by

from conftest import DSML, Platform, hub_token

SLUG = "cli-sales"


def notebook(*sources: str, environment: str = "python-minimal") -> dict:
    """A notebook of code cells whose kernel is a curated environment's."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {
        "name": kernel_name(environment),
        "display_name": environment,
        "language": "python",
    }
    return nb


def write(path: Path, nb: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


# ---- which files go with the notebook ------------------------------------------------------


def test_files_named_by_takes_files_folders_and_globs_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "sales.csv").write_text("region,amount\nNorth,3\n")
    (tmp_path / "data" / "costs.csv").write_text("x\n")
    (tmp_path / "data" / "raw" / "a.json").write_text("{}")
    (tmp_path / "lookup").mkdir()
    (tmp_path / "lookup" / "codes.txt").write_text("c")
    (tmp_path / "lookup" / ".hidden").write_text("h")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / "unnamed.txt").write_text("u")
    (tmp_path / "out.txt").symlink_to("/etc/hostname")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("o")
    nb = notebook(
        "%matplotlib inline\nimport csv\nrows = list(csv.reader(open('data/sales.csv')))",
        "import glob\nfiles = glob.glob('data/raw/*.json')\nsep = '.'",
        "open('lookup')\nopen('.env')\nopen('out.txt')\nopen('/etc/hostname')",
        f"open('../{outside.name}')\nname = f'{{x}}.txt'\nopen('./data/sales.csv')",
    )
    nb.cells.append(nbformat.v4.new_markdown_cell("'unnamed.txt' in prose does not count"))
    found = files_named_by(nb, tmp_path)
    assert list(found) == ["data/raw/a.json", "data/sales.csv", "lookup/codes.txt"]
    assert found["data/sales.csv"] == tmp_path / "data" / "sales.csv"


def test_files_named_by_refuses_more_than_its_limits(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text("x" * 10)
    nb = notebook("for f in ['f0.txt', 'f1.txt', 'f2.txt']: open(f)")
    assert len(files_named_by(nb, tmp_path)) == 3
    with pytest.raises(DsmlError, match="more than 2 files"):
        files_named_by(nb, tmp_path, max_files=2)
    with pytest.raises(DsmlError, match="30 bytes; the limit is 29"):
        files_named_by(nb, tmp_path, max_bytes=29)


def test_publish_refuses_a_file_outside_the_notebooks_folder(tmp_path: Path) -> None:
    nb_path = write(tmp_path / "app" / "app.ipynb", notebook("print(1)"))
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": "unused", "DSML_HUB_URL": "http://127.0.0.1:9"}
    for bad, said in (("../x.csv", "without '..'"), ("missing.csv", "no such file")):
        r = subprocess.run(
            DSML + ["publish", str(nb_path), "--title", "T", "--file", bad],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and said in r.stderr, r.stderr


# ---- the commands against the platform -----------------------------------------------------


class User:
    """Runs `dsml` as one user of the platform, with their token in the environment."""

    def __init__(self, platform: Platform, name: str):
        self.name = name
        self.token = hub_token(platform, name)
        self.env = {
            **os.environ,
            "DSML_HUB_URL": platform.url,
            "JUPYTERHUB_API_TOKEN": self.token,
        }
        self.api = httpx.Client(
            base_url=platform.url + "/services/apps/api/",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
        )

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            DSML + list(args), capture_output=True, text=True, env=self.env, cwd=cwd, timeout=180
        )

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        r = self.run(*args, cwd=cwd)
        assert r.returncode == 0, f"dsml {' '.join(args)}: {r.returncode}\n{r.stderr}{r.stdout}"
        return r.stdout

    def json(self, *args: str, cwd: Path | None = None) -> dict:
        return json.loads(self.ok(*args, "--json", cwd=cwd))

    def fails(self, *args: str) -> str:
        """Run a command that must fail; return its one-line error."""
        r = self.run(*args)
        assert r.returncode != 0, r.stdout
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dsml "), r.stderr
        return lines[0]


@pytest.fixture(scope="module")
def scientist(platform: Platform) -> User:
    return User(platform, "scientist")


@pytest.fixture(scope="module")
def sales_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A notebook that reads a data file beside it, as an app would."""
    folder = tmp_path_factory.mktemp("sales-app")
    (folder / "data").mkdir()
    (folder / "data" / "sales.csv").write_text("region,amount\nNorth,3\nSouth,4\n")
    (folder / "notes.txt").write_text("not named by the notebook")
    return write(
        folder / "sales.ipynb",
        notebook(
            "import csv\nrows = list(csv.DictReader(open('data/sales.csv')))",
            "print('total', sum(int(r['amount']) for r in rows))",
        ),
    )


def test_publish_show_new_version_and_rollback(
    platform: Platform, scientist: User, sales_app: Path
) -> None:
    first = scientist.json(
        "publish", str(sales_app), "--title", "Sales by region", "--env", "python-minimal",
        "--description", "Totals per region", "--slug", SLUG,
    )  # fmt: skip
    assert first["slug"] == SLUG and first["version"] == 1
    assert first["url"] == f"{platform.url}/services/apps/a/{SLUG}"
    assert first["files"] == ["data/sales.csv"], "only the file the notebook names goes"

    shown = scientist.json("apps", "show", SLUG)
    assert shown["app"]["title"] == "Sales by region"
    assert shown["app"]["owner"] == "scientist"
    assert shown["app"]["current_version"] == 1
    assert [v["version"] for v in shown["versions"]] == [1]
    assert shown["versions"][0]["files"] == ["data/sales.csv"]

    # a new version: the same link, the title kept, the files given by hand this time
    out = scientist.ok("publish", str(sales_app), "--slug", SLUG, "--file", "data")
    assert out.strip() == first["url"], "publish prints the app's link and nothing else"
    shown = scientist.json("apps", "show", SLUG)
    assert shown["app"]["current_version"] == 2
    assert shown["app"]["title"] == "Sales by region"
    assert [v["version"] for v in shown["versions"]] == [2, 1]

    assert f"{SLUG}: version 1 is current" in scientist.ok("apps", "rollback", SLUG, "1")
    text = scientist.ok("apps", "show", SLUG)
    assert "current version: 1" in text
    assert scientist.json("apps", "show", SLUG)["app"]["current_version"] == 1

    listing = scientist.ok("apps")
    row = next(line for line in listing.splitlines() if line.startswith(SLUG))
    assert "Sales by region" in row and "scientist" in row and first["url"] in row
    assert SLUG in [a["slug"] for a in scientist.json("apps")]


def test_share_and_unshare(platform: Platform, scientist: User) -> None:
    shares = scientist.json("apps", "share", SLUG, "--group", "stakeholders", "--user", "analyst")
    assert "stakeholders" in shares["groups"] and "analyst" in shares["users"]
    row = next(line for line in scientist.ok("apps").splitlines() if line.startswith(SLUG))
    assert "group:stakeholders" in row

    stakeholder = User(platform, "stakeholder")
    assert SLUG in [a["slug"] for a in stakeholder.json("apps")]

    out = scientist.ok("apps", "unshare", SLUG, "--user", "analyst")
    assert "user:analyst" not in out and "group:stakeholders" in out
    shares = scientist.api.get(f"apps/{SLUG}/shares").json()
    assert shares["users"] == [] and shares["groups"] == ["stakeholders"]

    scientist.ok("apps", "unshare", SLUG, "--group", "stakeholders")
    assert SLUG not in [a["slug"] for a in stakeholder.json("apps")]


def test_start_stop_logs_and_usage(scientist: User) -> None:
    status = scientist.json("apps", "start", SLUG, "--wait", "--timeout", "120")
    assert status["ready"] and status["state"] == "running"
    assert scientist.api.get(f"apps/{SLUG}/status").json()["ready"]

    scientist.ok("apps", "logs", SLUG)
    logs = scientist.json("apps", "logs", SLUG)
    assert set(logs) >= {"lines", "error"}

    usage = scientist.json("apps", "usage", SLUG)
    assert set(usage) >= {"views", "unique_viewers", "render_seconds_p50", "versions"}
    assert "VIEWS" in scientist.ok("apps", "usage", SLUG)

    assert f"{SLUG}: stopped" in scientist.ok("apps", "stop", SLUG)
    assert scientist.api.get(f"apps/{SLUG}/status").json()["state"] == "stopped"
    assert scientist.json("apps", "start", SLUG, "--wait")["ready"]


def test_errors_are_one_line(platform: Platform, scientist: User, sales_app: Path) -> None:
    line = scientist.fails(
        "publish", str(sales_app), "--title", "Nope", "--env", "python-minimal",
        "--slug", "cli-refused", "--share-group", "no-such-group",
    )  # fmt: skip
    assert "no-such-group" in line and "400" in line
    assert scientist.api.get("apps/cli-refused").status_code == 404, "nothing stored"

    line = scientist.fails("apps", "share", SLUG, "--user", "nobody-here")
    assert "nobody-here" in line

    analyst = User(platform, "analyst")
    line = analyst.fails(
        "publish", str(sales_app), "--title", "Mine now", "--env", "python-minimal", "--slug", SLUG
    )
    assert "409" in line
    assert scientist.json("apps", "show", SLUG)["app"]["current_version"] == 1

    assert "404" in scientist.fails("apps", "show", "no-such-app")


def test_delete(scientist: User) -> None:
    assert f"deleted {SLUG}" in scientist.ok("apps", "delete", SLUG)
    assert "404" in scientist.fails("apps", "show", SLUG)
    assert SLUG not in [a["slug"] for a in scientist.json("apps")]
