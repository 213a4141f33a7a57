"""The house's rooms: imports point one way, with no circle anywhere in the project.

The graph counts every import of a project module, at module level and inside functions alike:
an import deferred into a function body still ties the two modules together, and lazy imports
used to dodge a circle are how the circles of the first round hid (issue #13).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "core", "moderation", "principles", "reports", "hma", "sso")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules `module` imports (resolving relative imports and `from pkg import
    submodule`)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            # The deepest project module the name refers to (a.b.c → a.b if c is a name).
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in _project_files()}
    known = set(files)
    return {module: _imports(path, module, known) for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


class ImportGraphTests:
    def test_the_project_has_no_import_circle(self) -> None:
        cycle = find_cycle(import_graph())
        assert cycle is None, "import circle: " + " → ".join(cycle or [])

    def test_a_circle_held_together_by_a_lazy_import_is_still_a_circle(
        self, tmp_path: Path
    ) -> None:
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "tasks.py").write_text("def run():\n    from .services import work\n")
        (package / "services.py").write_text("from pkg.tasks import run\n")
        known = {"pkg", "pkg.tasks", "pkg.services"}
        graph = {
            "pkg.tasks": _imports(package / "tasks.py", "pkg.tasks", known),
            "pkg.services": _imports(package / "services.py", "pkg.services", known),
        }
        assert graph == {"pkg.tasks": {"pkg.services"}, "pkg.services": {"pkg.tasks"}}
        assert find_cycle(graph) == ["pkg.services", "pkg.tasks", "pkg.services"]
        assert find_cycle({"a": {"b"}, "b": set()}) is None

    @pytest.mark.parametrize(
        ("lower", "higher"),
        [
            ("moderation.models", "moderation.selectors"),
            ("moderation.selectors", "moderation.services"),
            ("moderation.services", "moderation.views"),
            ("moderation.services", "moderation.api"),
            ("moderation.services", "moderation.tasks"),
            ("moderation.rules", "moderation.views"),
            ("moderation", "reports"),
            ("principles", "moderation"),
            ("moderation", "hma"),
            ("hma.models", "hma.selectors"),
            ("hma.selectors", "hma.services"),
            ("hma.services", "hma.api"),
            # Single sign-on builds on core (roles, audit, 2FA); core names it only in settings.
            ("core", "sso"),
            ("sso.services", "sso.views"),
        ],
    )
    def test_imports_point_one_way(self, lower: str, higher: str) -> None:
        """Nothing in a lower layer imports a module of a higher one."""
        graph = import_graph()
        offenders = sorted(
            f"{module} imports {target}"
            for module, targets in graph.items()
            if module == lower or module.startswith(lower + ".")
            for target in targets
            if target == higher or target.startswith(higher + ".")
        )
        assert offenders == []
