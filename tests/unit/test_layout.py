"""House rules a reader relies on: short functions, and CI running what the README says. (The import rules are
import-linter's contracts, run by CI's `lint-imports`.)"""

from __future__ import annotations

import ast

from tests.data import REPO

MAX_LINES = 60
# Text templates, where the length is the template's, not logic's.
TEMPLATES = {("service/model/repository.py", "production_config")}


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for path in sorted((REPO / "service").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith("service/api/pb/"):  # generated
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (relative, node.name) not in TEMPLATES:
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{relative}:{node.lineno} {node.name} ({lines} lines)")
    assert long == [], "split these functions:\n" + "\n".join(long)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = readme.split("**Set up and test**", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert command.startswith("bash .ci/setup --dev && ")
    assert (REPO / ".ci" / "run").read_text(encoding="utf-8").rstrip().endswith("\n" + command)
