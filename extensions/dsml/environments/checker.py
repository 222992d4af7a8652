"""Check notebooks, Python files and requirements files against a curated environment.

What a file asks of its environment (imports, `%pip install` lines, requirements) is read
without running it: notebook cells are parsed with `ast` after IPython syntax is set aside,
and every request is matched against the environment's inventory (what its Python can import)
and its lock (the pinned versions). Each request becomes one `Finding`; `rank` says which
curated environment satisfies most of them.

Input that is not what it claims to be (not JSON, JSON but not a notebook, over 50 MB, binary)
raises `CheckInputError`, whose one-line message names the file and what is wrong.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from dsml import notebooks
from dsml.datadir import DataDir
from dsml.environments.inventory import (
    Inventory,
    guess_distribution,
    inventory,
    lock_inventory,
)
from dsml.environments.spec import Environment, normalize_name
from dsml.environments.state import status
from dsml.exceptions import DsmlError
from dsml.kernels import notebook_environment

MAX_BYTES = 50 * 1024 * 1024
"""Largest file read (50 MB): a bigger notebook is an output dump, not something to check."""

STATUSES = ("ok", "stdlib", "local", "missing", "version-mismatch", "unsupported")
"""What a finding can be: the first three are satisfied, the last three are problems."""

SATISFIED = frozenset({"ok", "stdlib", "local"})

SKIPPED_DIRS = frozenset({".ipynb_checkpoints", "__pycache__", "node_modules"})
"""Folders never searched for notebooks (besides hidden ones)."""

_PYTHON_CELL_MAGICS = frozenset({"capture", "time", "timeit", "prun", "debug"})
_SHELL_CELL_MAGICS = frozenset({"bash", "sh", "script", "system"})
_PYTHON_LINE_MAGICS = frozenset({"time", "timeit", "prun"})
_BUILTIN_IPYTHON_EXTENSIONS = frozenset({"autoreload", "storemagic"})
_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
_PIP_VALUE_OPTIONS = frozenset(
    "-c --constraint -t --target --platform --python-version --implementation --abi --root "
    "--prefix --src --upgrade-strategy --progress-bar --root-user-action --report -i "
    "--index-url --extra-index-url -f --find-links --trusted-host --cert --client-cert "
    "--cache-dir --log --proxy --retries --timeout --exists-action --keyring-provider "
    "--no-binary --only-binary --config-settings -C --global-option --python --group".split()
)
_CONDA_VALUE_OPTIONS = frozenset("-c --channel -n --name -p --prefix --file".split())
_MAGIC_LINE = re.compile(
    r"^(?P<indent>\s*)(?:[\w.,\[\]\s]+=\s*)?(?P<sigil>%{1,2}|!{1,2})(?P<cmd>.*)$"
)
_AUTOMAGIC = re.compile(r"^(?P<indent>\s*)(?P<cmd>(?:pip|conda|mamba)\s+install\b.*)$")
_HELP_LINE = re.compile(r"^\s*(\?{1,2}\S.*|[\w.\[\]()]+\s*\?{1,2})\s*$")
_INCLUDE = re.compile(r"^(-r|--requirement)(\s+|=)?(?P<file>\S+)$")
_REQ_OPTION = re.compile(r"\s+--(hash|config-settings|global-option|install-option)[=\s]\S+")
_COMMENT = re.compile(r"(^|\s)#.*$")
_EDITABLE = "an editable install of local code, which curated environments do not take"
_URL = "it installs from a URL or a path, which curated environments do not take"
_INVALID = "it is not a valid requirement"
_CONDA = "conda is not available on the platform: curated environments are built with pip"
_IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+(?P<from>[A-Za-z_][\w.]*)\s+import\b|import\s+(?P<names>[\w., ]+))"
)


class CheckInputError(DsmlError):
    """A file given to `dsml check` is not a notebook, Python file or requirements file."""

    exit_code = 2


@dataclass(frozen=True)
class Request:
    """One thing a file asks of its environment: an import, or a package to install."""

    file: str
    cell: int | None  # 1-based position among all cells; None outside notebooks
    line: int  # 1-based, within the cell for notebooks
    kind: str  # import | pip-install | requirement
    name: str  # top-level module for imports, requirement name for installs
    spec: str = ""  # version specifier asked for, "" if none
    extras: tuple[str, ...] = ()
    optional: bool = False  # inside try/except ImportError: the code runs without it
    tool: str = ""  # pip | conda | uv for installs
    unsupported: str = ""  # why no curated environment can satisfy it (conda, URL, path)
    text: str = ""  # the source line, stripped
    folder: str = ""  # the file's folder, where local modules are found


@dataclass
class Finding:
    """A request checked against one environment."""

    file: str
    cell: int | None
    line: int
    kind: str
    name: str
    distribution: str
    requested: str
    pinned: str | None
    status: str
    environment: str
    environment_version: str
    optional: bool = False
    tool: str = ""
    text: str = ""
    detail: str = ""
    available_in: list[str] = field(default_factory=list)  # environments that satisfy it
    pinned_in: dict[str, str] = field(default_factory=dict)  # environment -> version it has

    @property
    def problem(self) -> bool:
        """True when the request is not satisfied and the code needs it."""
        return self.status not in SATISFIED and not self.optional

    def to_json(self) -> dict[str, Any]:
        """The JSON form of `dsml check --json`."""
        return asdict(self)


@dataclass(frozen=True)
class Source:
    """One file to check and the environment its own metadata names (if any)."""

    path: Path
    display: str
    kind: str  # notebook | python | requirements
    kernel_environment: str | None = None


@dataclass(frozen=True)
class EnvironmentView:
    """A curated environment with what it can import, from its build or else from its lock."""

    env: Environment
    inventory: Inventory
    built: bool

    @property
    def name(self) -> str:
        """The environment's name."""
        return self.env.name


# ---------------------------------------------------------------- reading files


def _read_text(path: Path, display: str, what: str) -> str:
    """Read a file as UTF-8 text, refusing directories, huge files and binaries in one line."""
    try:
        if not path.is_file():
            raise CheckInputError(f"{display}: not a regular file")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CheckInputError(
                f"{display}: {size / 1024 / 1024:.1f} MB is over the "
                f"{MAX_BYTES // 1024 // 1024} MB limit for a {what}; clear its outputs first"
            )
        data = path.read_bytes()
    except OSError as e:
        raise CheckInputError(f"{display}: cannot be read ({e.strerror or e})") from None
    if len(data) > MAX_BYTES:  # grew since stat, or a file that lies about its size
        raise CheckInputError(f"{display}: over the {MAX_BYTES // 1024 // 1024} MB limit")
    if b"\x00" in data[:65536]:
        raise CheckInputError(f"{display}: a binary file, not a {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CheckInputError(
            f"{display}: a binary file, not a {what} (not UTF-8 at byte {e.start})"
        ) from None


def read_notebook(path: Path, display: str | None = None) -> dict[str, Any]:
    """Load an nbformat 4 notebook as plain JSON, raising CheckInputError on anything else."""
    display = display or str(path)
    try:
        return notebooks.parse_notebook(_read_text(path, display, "notebook"), display)
    except notebooks.NotebookError as e:
        raise CheckInputError(str(e)) from None


def _source_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".ipynb"):
        return "notebook"
    if name.endswith(".py"):
        return "python"
    if name.endswith((".txt", ".in")) or name.startswith("requirements"):
        return "requirements"
    return ""


def _walk_notebooks(folder: Path) -> Iterator[Path]:
    """Notebooks under `folder`, sorted, skipping checkpoints and hidden folders."""
    for path in sorted(folder.rglob("*.ipynb")):
        parts = path.relative_to(folder).parts
        if any(p in SKIPPED_DIRS or p.startswith(".") for p in parts[:-1]):
            continue
        if path.is_file():
            yield path


def collect_sources(paths: Iterable[str]) -> list[Source]:
    """Expand the command line's paths (files and folders) into the files to check."""
    sources: list[Source] = []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found = list(_walk_notebooks(path))
            if not found:
                raise CheckInputError(f"{arg}: a folder with no notebooks (*.ipynb) in it")
            for nb_path in found:
                display = str(Path(arg) / nb_path.relative_to(path))
                sources.append(Source(nb_path, display, "notebook"))
            continue
        if not path.exists():
            raise CheckInputError(f"{arg}: no such file or folder")
        kind = _source_kind(path)
        if not kind:
            raise CheckInputError(
                f"{arg}: not a notebook (.ipynb), Python file (.py) or requirements file "
                "(.txt, .in)"
            )
        sources.append(Source(path, arg, kind))
    return sources


# ---------------------------------------------------------------- reading requests


class _ImportFinder(ast.NodeVisitor):
    """Collect top-level module names imported anywhere in a module, with their line."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, bool]] = []
        self._optional = 0

    def _add(self, dotted: str, line: int) -> None:
        top = dotted.split(".")[0]
        if top.isidentifier():
            self.found.append((top, line, self._optional > 0))

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802 - ast's visitor names
        """`import a.b as c` asks for `a`."""
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        """`from a.b import c` asks for `a`; relative imports are the project's own."""
        if node.level == 0 and node.module:
            self._add(node.module, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        """`importlib.import_module("a")` and `__import__("a")` with a literal name."""
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if (
            name in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            self._add(node.args[0].value, node.lineno)
        self.generic_visit(node)

    def _guarded(self, body: list[ast.stmt], guarded: bool, rest: Iterable[ast.AST]) -> None:
        self._optional += guarded
        for child in body:
            self.visit(child)
        self._optional -= guarded
        for child in rest:
            self.visit(child)

    def visit_Try(self, node: ast.Try) -> None:  # noqa: N802
        """Imports in the body of `try: ... except ImportError:` are optional."""
        guarded = any(_catches_import_error(h.type) for h in node.handlers)
        self._guarded(node.body, guarded, [*node.handlers, *node.orelse, *node.finalbody])

    visit_TryStar = visit_Try  # noqa: N815

    def visit_With(self, node: ast.With) -> None:  # noqa: N802
        """`with contextlib.suppress(ImportError):` makes its imports optional too."""
        guarded = any(
            isinstance(item.context_expr, ast.Call)
            and getattr(item.context_expr.func, "attr", getattr(item.context_expr.func, "id", ""))
            == "suppress"
            and any(_catches_import_error(arg) for arg in item.context_expr.args)
            for item in node.items
        )
        self._guarded(node.body, guarded, node.items)


def _catches_import_error(node: ast.expr | None) -> bool:
    if node is None:
        return True
    if isinstance(node, ast.Tuple):
        return any(_catches_import_error(elt) for elt in node.elts)
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in _IMPORT_ERRORS


def _imports_of(code: str) -> list[tuple[str, int, bool]] | None:
    """(module, line, optional) of every import in `code`, or None if it does not parse."""
    try:
        tree = ast.parse(code)
        finder = _ImportFinder()
        finder.visit(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return finder.found


def _imports_line_by_line(code: str) -> list[tuple[str, int, bool]]:
    """Imports of code that does not parse as a whole, read line by line."""
    found = []
    for number, line in enumerate(code.splitlines(), start=1):
        match = _IMPORT_LINE.match(line)
        if match is None:
            continue
        names = [match.group("from")] if match.group("from") else match.group("names").split(",")
        for name in names:
            top = name.strip().split(" ")[0].split(".")[0]
            if top.isidentifier():
                found.append((top, number, False))
    return found


@dataclass
class _Command:
    line: int
    text: str  # the command without its sigil, continuation lines joined
    magic: bool  # %pip (True) or a shell command (False)


def _set_aside_ipython(code: str) -> tuple[str, list[_Command]]:
    """Blank out IPython-only lines (magics, shell, help) keeping line numbers; return them."""
    lines = code.split("\n")
    out: list[str] = []
    commands: list[_Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _MAGIC_LINE.match(line) or _AUTOMAGIC.match(line)
        if match is None:
            out.append("" if _HELP_LINE.match(line) else line)
            i += 1
            continue
        indent = match.group("indent")
        sigil = match.groupdict().get("sigil") or "%"
        text = match.group("cmd")
        start = i
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        i += 1
        name, _, rest = text.strip().partition(" ")
        if sigil.startswith("%") and name in _PYTHON_LINE_MAGICS:
            out.append(indent + rest)  # `%time import x` runs Python
        elif sigil.startswith("%") and name in ("load_ext", "reload_ext"):
            ext = rest.strip().split(" ")[0] if rest.strip() else ""
            keep = ext and ext not in _BUILTIN_IPYTHON_EXTENSIONS
            out.append(
                f"{indent}import {ext}"
                if keep and ext.replace(".", "_").isidentifier()
                else f"{indent}pass"
            )
        else:
            commands.append(_Command(start + 1, text.strip(), sigil.startswith("%")))
            out.append(indent + "pass")
        out.extend([""] * (i - start - 1))
    return "\n".join(out), commands


def _install_command(command: _Command) -> Iterator[tuple[str, list[str]]]:
    """(tool, arguments after `install`) for each install in a shell line or magic."""
    for part in re.split(r"&&|\|\||;", command.text):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and (words[0] == "sudo" or re.match(r"^\w+=", words[0])):
            words = words[1:]
        if not words:
            continue
        exe = words[0].rsplit("/", 1)[-1]
        if re.fullmatch(r"pip[\d.]*", exe):
            tool, args = "pip", words[1:]
        elif exe in ("conda", "mamba", "micromamba"):
            tool, args = "conda", words[1:]
        elif exe == "uv" and words[1:2] == ["pip"]:
            tool, args = "uv", words[2:]
        elif (re.fullmatch(r"python[\d.]*", exe) or "sys.executable" in exe) and words[1:3] == [
            "-m",
            "pip",
        ]:
            tool, args = "pip", words[3:]
        else:
            continue
        if args[:1] == ["install"]:
            yield tool, args[1:]


def _install_requests(command: _Command, source: Source, cell: int | None) -> list[Request]:
    """Requests for one `%pip install` / `!pip install` / `%conda install` line."""
    requests: list[Request] = []
    base = {
        "file": source.display,
        "cell": cell,
        "line": command.line,
        "kind": "pip-install",
        "text": ("%" if command.magic else "!") + command.text,
        "folder": str(source.path.parent),
    }
    for tool, args in _install_command(command):
        value_options = _CONDA_VALUE_OPTIONS if tool == "conda" else _PIP_VALUE_OPTIONS
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg in ("-r", "--requirement", "-e", "--editable") or arg.startswith(
                ("--requirement=", "--editable=")
            ):
                value = arg.split("=", 1)[1] if "=" in arg else (args[i] if i < len(args) else "")
                i += "=" not in arg
                if arg.startswith(("-e", "--editable")):
                    requests.append(Request(**base, name=value, tool=tool, unsupported=_EDITABLE))
                    continue
                requests.extend(_included_requirements(value, source, base, tool))
                continue
            if arg in value_options:
                i += 1
                continue
            if arg.startswith("-"):
                continue
            requests.append(_requirement_request(arg, base, tool))
    return requests


def _included_requirements(
    value: str, source: Source, base: dict[str, Any], tool: str
) -> list[Request]:
    """`pip install -r FILE` in a notebook: the file's requirements if it sits next to it."""
    path = source.path.parent / value
    if not path.is_file():
        return [
            Request(
                **base,
                name=value,
                tool=tool,
                unsupported=f"it installs from {value}, which is not next to the file",
            )
        ]
    included = Source(path, str(Path(source.display).parent / value), "requirements")
    where = {key: base[key] for key in ("file", "cell", "line", "kind", "folder")}
    return [
        Request(
            **{**asdict(r), **where, "tool": tool, "text": f"{base['text']} ({r.file}: {r.text})"}
        )
        for r in requirements_requests(included)
    ]


def _requirement_request(text: str, base: dict[str, Any], tool: str) -> Request:
    """A request for one requirement string (`pandas>=2,<3`, `numpy=1.26` for conda)."""
    if tool == "conda":
        name = re.split(r"[=<>!~\s\[]", text.split("::")[-1], maxsplit=1)[0]
        return Request(
            **base,
            name=normalize_name(name) if name else text,
            spec=text[len(name) :] if name else "",
            tool=tool,
            unsupported=_CONDA,
        )
    if "$" in text or "{" in text:
        return Request(
            **base,
            name=text,
            tool=tool,
            unsupported="its name comes from a variable at run time, so it cannot be checked",
        )
    if "://" in text or text.startswith((".", "/", "~")) or text.endswith((".whl", ".zip", ".gz")):
        return Request(**base, name=text, tool=tool, unsupported=_URL)
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return Request(**base, name=text, tool=tool, unsupported=_INVALID)
    if req.url:
        return Request(
            **base,
            name=normalize_name(req.name),
            tool=tool,
            unsupported=_URL,
        )
    return Request(
        **base,
        name=normalize_name(req.name),
        spec=str(req.specifier),
        extras=tuple(sorted(req.extras)),
        tool=tool,
    )


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined and comments removed."""
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw) if not raw.lstrip().startswith("#") else ""
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, (pending + line).strip()
        pending = ""
    if pending.strip():
        yield start, pending.strip()


def requirements_requests(source: Source, _seen: frozenset[Path] = frozenset()) -> list[Request]:
    """Requests of a requirements file, following `-r` includes; bad lines raise."""
    text = _read_text(source.path, source.display, "requirements file")
    seen = _seen | {source.path.resolve()}
    requests: list[Request] = []
    for number, line in _logical_lines(text):
        if not line:
            continue
        base = {
            "file": source.display,
            "cell": None,
            "line": number,
            "kind": "requirement",
            "text": line,
            "folder": str(source.path.parent),
        }
        include = _INCLUDE.match(line)
        if include:
            name = include.group("file")
            path = source.path.parent / name
            if path.resolve() in seen:
                continue
            if not path.is_file():
                raise CheckInputError(
                    f"{source.display} line {number}: included file {name} does not exist"
                )
            included = Source(path, str(Path(source.display).parent / name), "requirements")
            requests.extend(requirements_requests(included, seen))
            continue
        if line.startswith(("-e", "--editable")):
            value = line.split(None, 1)[-1] if " " in line else line.split("=", 1)[-1]
            requests.append(Request(**base, name=value, unsupported=_EDITABLE))
            continue
        if line.startswith("-"):
            continue  # index URLs, constraints, --pre: they ask for no package
        line = _REQ_OPTION.sub("", line)
        request = _requirement_request(line, base, "")
        if request.unsupported == _INVALID:
            raise CheckInputError(
                f"{source.display} line {number}: not a requirement: {line[:60]!r}; "
                "expected lines like 'pandas>=2,<3'"
            )
        marker = None
        try:
            marker = Requirement(line).marker
        except InvalidRequirement:
            pass
        if marker is not None and not marker.evaluate():
            continue  # meant for another platform or Python
        requests.append(request)
    return requests


def _code_requests(code: str, source: Source, cell: int | None, tolerant: bool) -> list[Request]:
    """Requests of one cell (or one .py file): imports and install commands."""
    requests: list[Request] = []
    folder = str(source.path.parent)
    lines = code.split("\n")
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split(" ")[0]
        if magic in _SHELL_CELL_MAGICS:
            for number, text in enumerate(lines[1:], start=2):
                command = _Command(number, text.strip(), magic=False)
                requests.extend(_install_requests(command, source, cell))
            return requests
        if magic not in _PYTHON_CELL_MAGICS:
            return requests  # %%html, %%javascript, %%writefile: no Python to check
        code = "\n" + "\n".join(lines[1:])
    found = _imports_of(code)
    commands: list[_Command] = []
    if found is None:
        cleaned, commands = _set_aside_ipython(code)
        found = _imports_of(cleaned)
        if found is None:
            if not tolerant:
                try:
                    ast.parse(cleaned)
                except SyntaxError as e:
                    raise CheckInputError(
                        f"{source.display} line {e.lineno}: not valid Python ({e.msg})"
                    ) from None
                except (ValueError, RecursionError, MemoryError) as e:
                    raise CheckInputError(f"{source.display}: not valid Python ({e})") from None
            found = _imports_line_by_line(cleaned)
    for command in commands:
        requests.extend(_install_requests(command, source, cell))
    seen: set[tuple[str, int]] = set()
    for module, line, optional in found:
        if (module, line) in seen:
            continue
        seen.add((module, line))
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        requests.append(
            Request(
                file=source.display,
                cell=cell,
                line=line,
                kind="import",
                name=module,
                optional=optional,
                text=text,
                folder=folder,
            )
        )
    return sorted(requests, key=lambda r: r.line)


def read_requests(source: Source) -> tuple[list[Request], str | None]:
    """Everything `source` asks of its environment, and the environment its kernelspec names."""
    if source.kind == "requirements":
        return requirements_requests(source), None
    if source.kind == "python":
        text = _read_text(source.path, source.display, "Python file")
        return _code_requests(text, source, None, tolerant=False), None
    nb = read_notebook(source.path, source.display)
    requests: list[Request] = []
    for index, cell in enumerate(nb["cells"], start=1):
        if cell.get("cell_type") != "code":
            continue
        text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        requests.extend(_code_requests(text, source, index, tolerant=True))
    return requests, notebook_environment(nb)


# ---------------------------------------------------------------- checking


def environment_views(environments: list[Environment], datadir: DataDir) -> list[EnvironmentView]:
    """Each environment with its inventory: from its build here, else approximated from its lock."""
    built: dict[str, Inventory] = {}
    for env in environments:
        state = status(env, datadir)
        if state.state == "built":
            built[env.name] = inventory(state.prefix)
    known: dict[str, list[str]] = {}
    for found in built.values():
        for module, dists in found.modules.items():
            known.setdefault(module, [])
            known[module].extend(d for d in dists if d not in known[module])
    return [
        EnvironmentView(env, built[env.name], True)
        if env.name in built
        else EnvironmentView(env, lock_inventory(env, known), False)
        for env in environments
    ]


def _is_local(module: str, folder: str) -> bool:
    """True if `module` is a .py file or package next to the checked file (the user's own)."""
    if not folder:
        return False
    base = Path(folder)
    package = base / module
    return (base / f"{module}.py").is_file() or (package.is_dir() and any(package.glob("*.py")))


def _evaluate(request: Request, view: EnvironmentView) -> tuple[str, str, str | None, str]:
    """(status, distribution, pinned version, detail) of one request in one environment."""
    found = view.inventory
    if request.kind == "import":
        if request.name in found.stdlib:
            return "stdlib", "", None, ""
        if _is_local(request.name, request.folder):
            return "local", "", None, "a module next to the file"
        if request.name in found.modules:
            dists = found.distributions_of(request.name)
            dist = dists[0] if dists else ""
            pinned = found.distributions.get(dist) if dist else None
            return "ok", dist, pinned, ""
        return "missing", "", None, ""
    dist = normalize_name(request.name)
    if request.unsupported:
        return "unsupported", dist, found.distributions.get(dist), request.unsupported
    pinned = found.distributions.get(dist)
    if pinned is None:
        return "missing", dist, None, ""
    if request.spec:
        try:
            fits = SpecifierSet(request.spec).contains(Version(pinned), prereleases=True)
        except (InvalidSpecifier, InvalidVersion):
            fits = request.spec.lstrip("=") == pinned
        if not fits:
            return "version-mismatch", dist, pinned, ""
    return "ok", dist, pinned, ""


def _suggested_distribution(request: Request, views: list[EnvironmentView]) -> str:
    """The distribution to ask the platform team for."""
    if request.kind != "import":
        return normalize_name(request.name) if not request.unsupported else request.name
    for view in views:
        if view.built and view.inventory.distributions_of(request.name):
            return view.inventory.distributions_of(request.name)[0]
    return guess_distribution(request.name)


def check(
    requests: list[Request], target: EnvironmentView, views: list[EnvironmentView]
) -> list[Finding]:
    """Check each request against `target`; note which of `views` would satisfy it."""
    findings = []
    for request in requests:
        state, dist, pinned, detail = _evaluate(request, target)
        available = []
        pinned_in = {}
        for view in views:
            other_state, _, other_pinned, _ = _evaluate(request, view)
            if other_state in SATISFIED:
                available.append(view.name)
            if other_pinned:
                pinned_in[view.name] = other_pinned
        if not dist and state == "missing":
            dist = _suggested_distribution(request, views)
        findings.append(
            Finding(
                file=request.file,
                cell=request.cell,
                line=request.line,
                kind=request.kind,
                name=request.name,
                distribution=dist,
                requested=request.spec,
                pinned=pinned,
                status=state,
                environment=target.name,
                environment_version=target.env.version,
                optional=request.optional,
                tool=request.tool,
                text=request.text,
                detail=detail,
                available_in=available,
                pinned_in=pinned_in,
            )
        )
    return findings


@dataclass(frozen=True)
class Fit:
    """How well one environment serves every request checked."""

    environment: str
    version: str
    satisfied: int
    total: int
    built: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def rank(requests: list[Request], views: list[EnvironmentView], prefer: str = "") -> list[Fit]:
    """Environments from best to worst fit: most required (then optional) requests satisfied.

    Requests are counted once per distinct module or requirement; the standard library, the
    user's own modules and requests no environment can ever satisfy are left out.
    """
    distinct: dict[tuple[str, str, str, bool], Request] = {}
    for request in requests:
        if request.unsupported:
            continue
        key = (request.kind, request.name, request.spec, request.optional)
        distinct.setdefault(key, request)
    scored = []
    for view in views:
        required = optional = total = 0
        for request in distinct.values():
            state = _evaluate(request, view)[0]
            if state in ("stdlib", "local"):
                continue
            total += 1
            if state == "ok":
                if request.optional:
                    optional += 1
                else:
                    required += 1
        scored.append(
            (
                (-required, -optional, view.name != prefer, view.name),
                Fit(view.name, view.env.version, required + optional, total, view.built),
            )
        )
    return [fit for _, fit in sorted(scored, key=lambda pair: pair[0])]


def label(name: str, version: str) -> str:
    """An environment and its version as shown in findings: `name (version)`."""
    return f"{name} ({version})"


def _what(f: Any) -> str:
    """How the request reads in the source: `import x`, `!pip install x==1`, `requires x`."""
    wanted = f"{f.name}{f.requested}"
    if f.kind == "import":
        return f"import {f.name}"
    if f.kind == "pip-install":
        return f"{f.tool or 'pip'} install {wanted}"
    return f"requires {wanted}"


def _request_command(f: Any) -> str:
    wanted = f"{f.distribution or f.name}{f.requested if f.kind != 'import' else ''}"
    return f"dsml env request {shlex.quote(wanted)} --env {f.environment}"


def describe(f: Any, display_names: dict[str, str]) -> str:
    """One line for a finding that is not satisfied: where, what, why, and what to do."""
    where = f.file + (f" cell {f.cell}" if f.cell is not None else "") + f" line {f.line}"
    env = label(f.environment, f.environment_version)
    ask = f"ask the platform team: {_request_command(f)}"
    others = [n for n in f.available_in if n != f.environment]
    if f.status == "missing":
        versions = {n: v for n, v in f.pinned_in.items() if n != f.environment}
        if others:
            switch = ", ".join(display_names.get(n, n) for n in others)
            elsewhere = f"it is in {', '.join(others)} (switch the kernel to {switch})"
        elif versions:
            pins = ", ".join(f"{n} has {f.distribution} {v}" for n, v in versions.items())
            elsewhere = f"{pins}, which does not fit {f.requested}"
        else:
            elsewhere = "no curated environment has it"
        reason = f"not in {env}; {elsewhere}"
    elif f.status == "version-mismatch":
        fits = (
            f"{', '.join(others)} fits"
            if others
            else "no curated environment has a version that fits"
        )
        reason = f"{env} pins {f.distribution} {f.pinned}, not {f.requested}; {fits}"
        if f.kind == "pip-install":
            reason += (
                "; installing it in the kernel is lost on restart and not seen by jobs or apps"
            )
    else:
        reason = f.detail
        if f.pinned:
            reason += f"; {env} already has {f.distribution} {f.pinned}: drop the line"
    optional = " (optional: the code catches ImportError)" if f.optional else ""
    return f"{where}: {_what(f)}{optional} — {reason}; {ask}"
