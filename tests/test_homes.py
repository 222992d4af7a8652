"""Home seeding: new notebooks arrive with platform updates, user changes are never overwritten."""

from __future__ import annotations

from pathlib import Path

from dsml.hub.homes import seed_home


def make_source(root: Path, files: dict[str, str]) -> Path:
    source = root / "training"
    for rel, text in files.items():
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return source


def test_first_seed_copies_everything(tmp_path: Path) -> None:
    source = make_source(tmp_path / "repo", {"01.ipynb": "one", "data/x.csv": "a,b"})
    report = seed_home(tmp_path / "home", [source])
    assert sorted(report["added"]) == ["training/01.ipynb", "training/data/x.csv"]
    assert (tmp_path / "home/training/data/x.csv").read_text() == "a,b"


def test_update_adds_new_and_refreshes_untouched_but_keeps_user_edits(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = make_source(tmp_path / "repo", {"01.ipynb": "v1", "02.ipynb": "v1", "03.ipynb": "v1"})
    seed_home(home, [source])
    (home / "training/01.ipynb").write_text("my answers")  # the user worked in it
    (home / "training/03.ipynb").unlink()  # the user deleted it
    make_source(
        tmp_path / "repo",
        {"01.ipynb": "v2", "02.ipynb": "v2", "03.ipynb": "v2", "04.ipynb": "new"},
    )
    report = seed_home(home, [source])
    assert (home / "training/01.ipynb").read_text() == "my answers"
    assert (home / "training/02.ipynb").read_text() == "v2"
    assert not (home / "training/03.ipynb").exists()
    assert (home / "training/04.ipynb").read_text() == "new"
    assert report["added"] == ["training/04.ipynb"]
    assert report["updated"] == ["training/02.ipynb"]
    assert sorted(report["kept"]) == ["training/01.ipynb", "training/03.ipynb"]


def test_a_file_the_user_made_first_is_not_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "training").mkdir(parents=True)
    (home / "training/01.ipynb").write_text("mine")
    source = make_source(tmp_path / "repo", {"01.ipynb": "platform"})
    report = seed_home(home, [source])
    assert (home / "training/01.ipynb").read_text() == "mine"
    assert report["kept"] == ["training/01.ipynb"]


def test_checkpoints_and_caches_are_not_copied(tmp_path: Path) -> None:
    source = make_source(
        tmp_path / "repo",
        {"01.ipynb": "x", ".ipynb_checkpoints/01-checkpoint.ipynb": "y", "__pycache__/m.pyc": "z"},
    )
    report = seed_home(tmp_path / "home", [source])
    assert report["added"] == ["training/01.ipynb"]
