"""The IPython extension every curated kernel loads, in a real `dsml-python-minimal` kernel.

A missing module is explained (this environment, the environments that have it, how to ask),
and a cell that pip-installs gets a warning that the install does not last.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from dsml.datadir import DataDir
from dsml.environments import find_environment
from dsml.environments.inventory import write_catalog
from dsml.environments.kernel_ext.dsml_kernel import (
    installs_packages,
    load_catalog,
    missing_module_message,
)


@pytest.fixture(scope="module")
def kernel(env_datadir: DataDir) -> Iterator[Any]:
    """A started dsml-python-minimal kernel found through JUPYTER_PATH, as user servers find it."""
    write_catalog(env_datadir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(env_datadir.jupyter_data))
        km = KernelManager(kernel_name="dsml-python-minimal")
        km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def execute(client: Any, code: str) -> tuple[dict[str, Any], dict[str, str], list[dict]]:
    """Run a cell; return the reply content, stdout/stderr text and error outputs."""
    streams = {"stdout": "", "stderr": ""}
    errors: list[dict] = []

    def on_output(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            streams[msg["content"]["name"]] += msg["content"]["text"]
        elif msg["msg_type"] == "error":
            errors.append(msg["content"])

    reply = client.execute_interactive(code, output_hook=on_output, timeout=120)
    return reply["content"], streams, errors


def test_kernelspec_loads_the_extension(env_datadir: DataDir, kernel: Any) -> None:
    spec = json.loads((env_datadir.kernels / "dsml-python-minimal" / "kernel.json").read_text())
    assert "--IPKernelApp.extra_extensions=dsml_kernel" in spec["argv"]
    assert spec["env"]["DSML_CATALOG"] == str(env_datadir.jupyter_data / "dsml-catalog.json")
    assert spec["env"]["DSML_ENVIRONMENT"] == "python-minimal"
    reply, streams, _ = execute(kernel, "import sys; print('dsml_kernel' in sys.modules)")
    assert reply["status"] == "ok"
    assert streams["stdout"].strip() == "True"


def test_missing_module_names_environments_that_have_it(kernel: Any) -> None:
    minimal = find_environment("python-minimal")
    ds = find_environment("datascience")
    reply, _, errors = execute(kernel, "x = 1\nimport pandas as pd")
    assert reply["status"] == "error"
    assert reply["ename"] == "ModuleNotFoundError"
    assert len(errors) == 1
    text = "\n".join(errors[0]["traceback"])
    assert (
        f"No module named 'pandas' in the curated environment {minimal.display_name} "
        f"({minimal.version})."
    ) in text
    assert f"It is in: {ds.display_name} ({ds.version}) as pandas {ds.packages['pandas']}" in text
    assert "To ask for it: dsml env request pandas --env python-minimal" in text
    assert text.rstrip().endswith("ModuleNotFoundError: No module named 'pandas'")


def test_unknown_module_is_in_no_environment(kernel: Any) -> None:
    reply, _, errors = execute(kernel, "import nosuchmodule_xyz")
    assert reply["status"] == "error"
    text = "\n".join(errors[0]["traceback"])
    assert "No module named 'nosuchmodule_xyz' in the curated environment" in text
    assert "No curated environment has it." in text
    assert "dsml env request nosuchmodule-xyz --env python-minimal" in text


def test_alias_names_the_distribution_to_ask_for(kernel: Any) -> None:
    _, _, errors = execute(kernel, "from sklearn.linear_model import LinearRegression")
    text = "\n".join(errors[0]["traceback"])
    assert "It is in: Python 3.11 (datascience)" in text
    assert "dsml env request scikit-learn --env python-minimal" in text


def test_missing_submodule_of_a_present_package_is_a_plain_error(kernel: Any) -> None:
    reply, _, errors = execute(kernel, "import json.nosuch_part")
    assert reply["status"] == "error"
    text = "\n".join(errors[0]["traceback"])
    assert "curated environment" not in text
    assert "nosuch_part" in text


def test_pip_install_warns_and_still_runs(kernel: Any) -> None:
    reply, streams, _ = execute(kernel, "%pip install --no-index --dry-run six")
    assert reply["status"] == "ok"
    assert "lasts until this kernel restarts" in streams["stderr"]
    assert "scheduled jobs and apps do not see it" in streams["stderr"]
    assert "dsml env request PACKAGE --env python-minimal" in streams["stderr"]
    assert "six" in streams["stdout"]  # pip ran: "Requirement already satisfied: six"

    reply, streams, _ = execute(kernel, "!pip install --no-index --dry-run six")
    assert reply["status"] == "ok"
    assert "lasts until this kernel restarts" in streams["stderr"]


def test_ordinary_cell_gets_no_warning(kernel: Any) -> None:
    reply, streams, _ = execute(kernel, "print('pip install is just text here')")
    assert reply["status"] == "ok"
    assert streams["stderr"] == ""


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%pip install pandas", True),
        ("!pip3 install --user x", True),
        ("out = !pip install x", True),
        ("!{sys.executable} -m pip install x", True),
        ("!python -m pip install x", True),
        ("%conda install -y numpy", True),
        ("!uv pip install x", True),
        ("%%bash\npip install x", True),
        ("import pip", False),
        ("!pip --version", False),
        ("%pip list", False),
        ("print('pip install')", False),
    ],
)
def test_install_detection(cell: str, expected: bool) -> None:
    assert installs_packages(cell) is expected


def test_message_without_a_catalog_does_not_claim_nobody_has_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("DSML_ENVIRONMENT", "datascience")
    monkeypatch.setenv("DSML_ENVIRONMENT_VERSION", "abc123")
    broken = tmp_path / "catalog.json"
    broken.write_text("{not json")
    lines = missing_module_message("lightgbm", load_catalog(str(broken)))
    assert lines[0] == "No module named 'lightgbm' in the curated environment datascience (abc123)."
    assert "cannot be read" in lines[1]
    assert "No curated environment has it." not in lines
    assert lines[2].startswith("To ask for it: dsml env request lightgbm --env datascience")


def _tiny_wheel(folder: Path) -> Path:
    """A minimal wheel of a one-module package, made here (no index needed)."""
    import base64
    import hashlib
    import zipfile

    files = {
        "dsmltinypkg.py": "VALUE = 42\n",
        "dsmltinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: dsmltinypkg\n"
        "Version: 1.0\n",
        "dsmltinypkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append("dsmltinypkg-1.0.dist-info/RECORD,,")
    files["dsmltinypkg-1.0.dist-info/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / "dsmltinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return wheel


def test_pip_install_goes_to_a_private_folder_not_the_shared_env(
    kernel: Any, tmp_path: Path, env_datadir: DataDir
) -> None:
    wheel = _tiny_wheel(tmp_path)
    reply, streams, _ = execute(kernel, f"%pip install --no-index {wheel}")
    assert reply["status"] == "ok", streams
    reply, streams, _ = execute(
        kernel, "import dsmltinypkg\nprint(dsmltinypkg.VALUE, dsmltinypkg.__file__)"
    )
    assert reply["status"] == "ok", streams
    value, path = streams["stdout"].split()
    assert value == "42" and "dsml-pip-" in path
    shared = env_datadir.environments / "python-minimal"
    assert not list(shared.glob("*/lib/python*/site-packages/dsmltinypkg*"))
