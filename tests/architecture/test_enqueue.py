"""Every enqueue goes through core.enqueue.enqueue_on_commit (after commit, broker-down safe),
and every task it names is registered."""

from __future__ import annotations

import ast
import re

from celery import current_app

from tests.architecture.test_imports import ROOT, _project_files

HELPER = ROOT / "core" / "enqueue.py"
DIRECT_SEND = re.compile(r"\.(delay|apply_async|send_task|signature|s)\(|\bsend_task\b")


class EnqueueTests:
    def test_no_code_sends_a_task_except_through_the_helper(self) -> None:
        offenders = []
        for path in _project_files():
            if path == HELPER:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if DIRECT_SEND.search(code):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
        assert offenders == []

    def test_no_code_registers_its_own_on_commit_enqueue(self) -> None:
        """transaction.on_commit is for side effects like deleting a file, never for a task."""
        offenders = []
        for path in _project_files():
            if path == HELPER:
                continue
            text = path.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(text)):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "on_commit"
                    and "task" in ast.unparse(node).lower()
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        assert offenders == []

    def test_every_task_named_in_an_enqueue_is_registered(self) -> None:
        named: set[str] = set()
        for path in _project_files():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "enqueue_on_commit"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    named.add(node.args[0].value)
        assert named, "the scan found no enqueue by name"
        assert sorted(named - set(current_app.tasks)) == []
