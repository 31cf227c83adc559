"""The docs' code runs: every block of the scenario-writing guide, in order (a block titled
``X.py`` is written to that file, a python block is executed, each ``superposim`` line of a bash
block is run and must succeed); every built-in scenario has its page."""

import re
import shlex
from pathlib import Path

import pytest

from scenarios.cli.main import main
from scenarios.engine.catalog import BUILTIN

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str, str]]:
    return [(lang, attrs.strip(), code) for lang, attrs, code in BLOCK.findall(page.read_text())]


def test_the_guide_to_writing_a_scenario_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("runs").mkdir()
    namespace: dict = {"__name__": "guide"}
    ran = {"file": 0, "python": 0, "command": 0}
    for lang, attrs, code in blocks(DOCS / "writing-scenarios.md"):
        title = re.search(r'title="([^"]+)"', attrs)
        if title:
            Path(title.group(1)).write_text(code)
            ran["file"] += 1
        elif lang == "python":
            exec(compile(code, "writing-scenarios.md", "exec"), namespace)
            ran["python"] += 1
        elif lang == "bash":
            for line in code.splitlines():
                if line.startswith("superposim "):
                    assert main(shlex.split(line)[1:]) == 0, line
                    ran["command"] += 1
    assert ran["file"] == 1 and ran["python"] >= 4 and ran["command"] >= 7, ran
    # what the commands wrote is what the page says they write
    assert {"result.json", "error_by_layer.png", "experiment.toml"} <= {p.name for p in Path("runs/tr").iterdir()}
    assert "active: at most m=512, got 1000" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_scenario_has_a_page_in_the_site(name):
    page = DOCS / "scenarios" / f"{name}.md"
    assert page.is_file(), f"docs/scenarios/{name}.md is missing"
    assert f"<!-- scenario: {name} -->" in page.read_text()
