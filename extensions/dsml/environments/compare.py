"""Compare the outputs of two runs of one notebook, cell by cell, for `dsml migrate-check`.

Text is compared with its numbers read as numbers (equal within a relative tolerance), so
"accuracy 0.9333333" and "accuracy 0.93333334" agree while "0.93" and "0.87" do not. Tables
(HTML or plain) are text with numbers; images compare by the hash of their bytes; errors by
exception name and value.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from dataclasses import dataclass, field
from typing import Any

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
# reprs that change from run to run without meaning anything
_VOLATILE = [
    (re.compile(r" at 0x[0-9a-fA-F]+"), " at 0x…"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?"), "<timestamp>"),
]


@dataclass
class CellDiff:
    """How one code cell's new outputs differ from its stored ones."""

    index: int
    source: str
    kind: str  # text | numbers | image | error | missing | extra
    detail: str
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _normalize(text: str) -> str:
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def numbers_close(a: str, b: str, rtol: float, atol: float) -> tuple[bool, str]:
    """Whether two texts agree: same words, numbers equal within tolerance. Returns (ok, why)."""
    a, b = _normalize(a), _normalize(b)
    if a == b:
        return True, ""
    skeleton_a, skeleton_b = _NUMBER.sub("#", a), _NUMBER.sub("#", b)
    if skeleton_a != skeleton_b:
        return False, "text differs"
    worst = None
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b), strict=True):
        fx, fy = float(x), float(y)
        if not math.isclose(fx, fy, rel_tol=rtol, abs_tol=atol):
            delta = abs(fx - fy) / max(abs(fx), abs(fy), 1e-300)
            if worst is None or delta > worst[0]:
                worst = (delta, x, y)
    if worst is None:
        return True, ""
    return False, f"{worst[1]} became {worst[2]} (relative change {worst[0]:.3g})"


def _summaries(outputs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each output as (kind, comparable text); images become their hash."""
    out: list[tuple[str, str]] = []
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            out.append(("text", _text(o.get("text"))))
        elif kind == "error":
            out.append(("error", f"{o.get('ename')}: {o.get('evalue')}"))
        elif kind in ("execute_result", "display_data"):
            data = o.get("data", {})
            image = next((t for t in _IMAGE_TYPES if t in data), None)
            if image:
                raw = _text(data[image])
                payload = raw.encode() if image == "image/svg+xml" else base64.b64decode(raw)
                out.append(("image", f"{image} sha256:{hashlib.sha256(payload).hexdigest()[:16]}"))
            elif "text/html" in data:
                out.append(("text", re.sub(r"<[^>]+>", " ", _text(data["text/html"]))))
            elif "text/plain" in data:
                out.append(("text", _text(data["text/plain"])))
    # consecutive stream chunks are one text, however the kernel split them
    merged: list[tuple[str, str]] = []
    for kind, text in out:
        if merged and kind == "text" and merged[-1][0] == "text":
            merged[-1] = ("text", merged[-1][1] + "\n" + text)
        else:
            merged.append((kind, text))
    return merged


def compare_notebooks(
    before: dict[str, Any], after: dict[str, Any], rtol: float = 1e-6, atol: float = 1e-12
) -> tuple[list[CellDiff], int]:
    """Cell-by-cell differences of code-cell outputs; returns (diffs, cells compared).

    Cells whose stored outputs are empty were never run (or cleared) and are not compared.
    """
    old_cells = [c for c in before.get("cells", []) if c.get("cell_type") == "code"]
    new_cells = [c for c in after.get("cells", []) if c.get("cell_type") == "code"]
    # Papermill adds an "injected-parameters" cell; drop it to keep indices aligned
    new_cells = [
        c for c in new_cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    diffs: list[CellDiff] = []
    compared = 0
    for index, (old, new) in enumerate(zip(old_cells, new_cells, strict=False)):
        old_out, new_out = _summaries(old.get("outputs", [])), _summaries(new.get("outputs", []))
        if not old_out:
            continue
        compared += 1
        source = _text(old.get("source"))
        reasons = []
        kind = "text"
        if len(old_out) != len(new_out):
            kind = "missing" if len(new_out) < len(old_out) else "extra"
            reasons.append(f"{len(old_out)} output(s) stored, {len(new_out)} now")
        for (k1, t1), (k2, t2) in zip(old_out, new_out, strict=False):
            if k1 != k2:
                kind = "error" if "error" in (k1, k2) else k2
                reasons.append(f"a {k1} output became a {k2} output")
            elif k1 == "image" and t1 != t2:
                kind = "image"
                reasons.append("image differs")
            elif k1 == "error" and t1 != t2:
                kind = "error"
                reasons.append(f"error {t1!r} became {t2!r}")
            elif k1 == "text":
                ok, why = numbers_close(t1, t2, rtol, atol)
                if not ok:
                    kind = "numbers" if "became" in why else "text"
                    reasons.append(why)
        if reasons:
            diffs.append(
                CellDiff(
                    index=index,
                    source=source,
                    kind=kind,
                    detail="; ".join(dict.fromkeys(reasons)),
                    before=[t for _, t in old_out],
                    after=[t for _, t in new_out],
                )
            )
    return diffs, compared


def html_report(name: str, environment: str, diffs: list[CellDiff], compared: int) -> str:
    """A standalone side-by-side HTML report of the differing cells."""
    rows = []
    for d in diffs:
        rows.append(
            "<tr><td class=i>{}</td><td><pre>{}</pre><p class=why>{}: {}</p></td>"
            "<td><pre>{}</pre></td><td><pre>{}</pre></td></tr>".format(
                d.index,
                html.escape(d.source[:2000]),
                html.escape(d.kind),
                html.escape(d.detail),
                html.escape("\n".join(d.before)[:5000]),
                html.escape("\n".join(d.after)[:5000]),
            )
        )
    verdict = (
        f"{len(diffs)} of {compared} compared cells differ"
        if diffs
        else f"all {compared} compared cells agree"
    )
    return f"""<!doctype html><html><head><meta charset=utf-8>
<title>migrate-check: {html.escape(name)}</title>
<style>body{{font-family:sans-serif;margin:24px}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ddd;padding:6px;vertical-align:top}}pre{{white-space:pre-wrap;margin:0;
font-size:12px}}.why{{color:#b00;margin:4px 0 0}}.i{{width:3em;text-align:center}}</style></head>
<body><h1>migrate-check: {html.escape(name)}</h1>
<p>Environment: <b>{html.escape(environment)}</b>. {verdict}.</p>
<table><tr><th>cell</th><th>source</th><th>stored output</th><th>output now</th></tr>
{"".join(rows)}</table></body></html>"""
