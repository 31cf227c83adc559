"""The floors of the code, read from every import statement (module-level or inside a function):
layers <- circuits <- scenarios; inside scenarios the engine, the command and the plots use no
scenario of the library, and no theme of the library imports another."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _modules(folder: str) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): _imports(p) for p in (ROOT / folder).rglob("*.py")}


def _offenders(folder: str, forbidden) -> list[str]:
    return [f"{path} imports {name}" for path, names in _modules(folder).items()
            for name in sorted(names) if forbidden(path, name)]


def test_imports_point_down_only():
    assert not _offenders("layers", lambda _, n: n.split(".")[0] in ("circuits", "scenarios"))
    assert not _offenders("circuits", lambda _, n: n.split(".")[0] == "scenarios")


def test_the_framework_imports_no_scenario():
    for part in ("engine", "cli", "plots"):
        assert not _offenders(f"scenarios/{part}", lambda _, n: n.startswith("scenarios.library"))
    assert not _offenders("scenarios/engine", lambda _, n: n.startswith("scenarios.cli"))


def test_no_theme_of_the_library_imports_another():
    def other_theme(path: str, name: str) -> bool:
        theme = Path(path).parts[2]
        return name.startswith("scenarios.library.") and name.split(".")[2] != theme

    assert not _offenders("scenarios/library", other_theme)
    assert {p.name for p in (ROOT / "scenarios" / "library").iterdir() if p.is_dir() and p.name != "__pycache__"} \
        == {"costs", "constructions", "toys", "trained", "interpretability"}
