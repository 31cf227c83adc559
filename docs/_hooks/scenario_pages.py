"""mkdocs hook: each scenario page's generated parts, from the registry and its stored default run.

A page ``docs/scenarios/NAME.md`` holds the discussion written by hand; the line
``<!-- scenario: NAME -->`` becomes the header (the one-line description, the claim and its
source from the module's docstring, the command) and ``<!-- scenario-reference -->`` the reference
(the figures and the measured table of the default run stored in ``docs/runs/NAME``, measured
beside predicted, the summary, the parameters from the registry, the row keys).
``<!-- scenario-index -->`` becomes the table of every scenario. So the parameters on the site are
always the code's, and the figures and numbers a run the tests compare with the code.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

from scenarios.engine.catalog import BUILTIN, catalog_entry

DOCS = Path(__file__).resolve().parent.parent
HEADER = re.compile(r"<!-- scenario: ([\w-]+) -->")
REFERENCE = "<!-- scenario-reference -->"
INDEX = "<!-- scenario-index -->"
ROW_LIMIT = 60  # longer tables are cut, with the count of what was left out


def _docstring(name: str) -> tuple[str, str]:
    """The claim (what comes before the key lists) and the key lists of a scenario's module."""
    text = importlib.import_module(BUILTIN[name]).__doc__ or ""
    text = text.replace("``", "`")
    head, _, rest = text.partition("\n\n")
    body, _, keys = rest.partition("Row keys")
    return (head.split(":", 1)[-1].strip() + "\n\n" + body.strip()).strip(), ("Row keys" + keys).strip() if keys else ""


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_number(v) for v in value[:8])
        return f"[{shown}{', ...' if len(value) > 8 else ''}]"
    return _cell(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(f"`{c}`" for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _stored(name: str) -> dict[str, Any] | None:
    path = DOCS / "runs" / name / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def header(name: str) -> str:
    entry = catalog_entry(name)
    claim, _ = _docstring(name)
    return "\n\n".join([
        f"# {name}", f"*{entry['description']}*", claim,
        f"```bash\nsuperposim run {name}                 # the defaults, as below\n"
        f"superposim run {name} --help          # every parameter\n```",
    ])


def reference(name: str) -> str:
    entry, result = catalog_entry(name), _stored(name)
    _, keys = _docstring(name)
    parts = []
    if result is not None:
        figures = sorted((DOCS / "runs" / name).glob("*.png"))
        parts.append(f"## The default run (seed {result['seed']})")
        parts += [f"![{p.stem}](../runs/{name}/{p.name})" for p in figures]
        rows = result["rows"]
        columns = result.get("columns") or list(dict.fromkeys(k for row in rows for k in row))
        parts.append("Measured beside predicted (`predicted_*` columns) and the dedicated baseline "
                     "(`*_dedicated`), as `result.json` holds them:")
        shown = [[_number(row.get(c)) for c in columns] for row in rows[:ROW_LIMIT]]
        parts.append(_table(columns, shown))
        if len(rows) > ROW_LIMIT:
            parts.append(f"({len(rows) - ROW_LIMIT} more rows in `docs/runs/{name}/result.json`)")
        scalars = [[f"`{k}`", _number(v)] for k, v in result["summary"].items() if not isinstance(v, dict)]
        if scalars:
            parts += ["Summary:", "| key | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in scalars)]
    parts.append("## Parameters")
    parts.append("| parameter | type | default | meaning |\n|---|---|---|---|\n" + "\n".join(
        f"| `{key}` | {_cell(kind)} | `{_cell(default)}` | {_cell(meaning)} |"
        for key, kind, default, meaning in entry["parameters"]))
    if keys:
        parts += ["## Keys", keys]
    facts = [f"devices: {', '.join(entry['devices'])}", f"graphable: {'yes' if entry['builds_networks'] else 'no'}",
             f"trainable: {'yes' if entry['trainable'] else 'no'}", f"default run: {entry['cost']}"]
    parts.append(" · ".join(facts))
    return "\n\n".join(parts)


def index() -> str:
    lines = ["| scenario | what it shows | graphable | default run |", "|---|---|---|---|"]
    for name in BUILTIN:
        entry = catalog_entry(name)
        lines.append(f"| [{name}]({name}.md) | {entry['description']} | "
                     f"{'yes' if entry['builds_networks'] else 'no'} | {entry['cost']} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    match = HEADER.search(markdown)
    if match:
        name = match.group(1)
        markdown = markdown.replace(match.group(0), header(name))
        markdown = (markdown.replace(REFERENCE, reference(name)) if REFERENCE in markdown
                    else markdown + "\n\n" + reference(name))
    return markdown.replace(INDEX, index())
