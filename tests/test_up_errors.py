"""`dsml up` fails fast, with one line and a non-zero exit, on the mistakes people make."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from conftest import DSML, free_port, write_settings


def run_up(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        DSML + ["up", "--no-build", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("culler:\n  timeout_seconds: -5\n", "culler.timeout_seconds = -5 is not allowed"),
        ("auth:\n  kind: ldap\n", "auth.kind = ldap is not allowed: expected one of native, oauth"),
        (
            "hub:\n  port: http\n",
            "hub.port = http is not allowed: expected a value of type integer",
        ),
        ("hub:\n  prot: 8000\n", "unknown key prot under hub; allowed keys: base_url, ip, port"),
        ("hub: [unclosed\n", "not valid YAML at line 2"),
        ("- just\n- a list\n", "expected a mapping of settings, found list"),
        ("auth:\n  kind: oauth\n", "auth.oauth_class is required when auth.kind is oauth"),
    ],
)
def test_broken_settings_file_gives_one_line(tmp_path: Path, content: str, expected: str) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(content)
    line = one_line_error(run_up("--settings", str(settings), cwd=tmp_path))
    assert expected in line
    assert str(settings) in line


def test_taken_port_gives_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        settings = write_settings(tmp_path / "s.yaml", tmp_path / "data", port)
        result = run_up("--settings", str(settings), cwd=tmp_path)
    line = one_line_error(result)
    assert f"port {port} on 127.0.0.1 is taken" in line
    assert result.returncode == 2


def test_unwritable_data_dir_gives_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = write_settings(tmp_path / "s.yaml", blocker / "data", free_port())
    line = one_line_error(run_up("--settings", str(settings), cwd=tmp_path))
    assert "is not writable" in line and "--data-dir" in line


def test_port_flag_is_validated(tmp_path: Path) -> None:
    settings = write_settings(tmp_path / "s.yaml", tmp_path / "data", free_port())
    line = one_line_error(run_up("--settings", str(settings), "--port", "70000", cwd=tmp_path))
    assert "hub.port = 70000 is not allowed: expected a number <= 65535" in line
