"""`make lint`: no module over 400 lines and no function over 60 lines in plugins/backup_pipelines.

Exceptions are listed here and, with the reason, in docs/architecture.md ("Size limits").
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "plugins" / "backup_pipelines"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
EXCEPTIONS: dict[str, int] = {}  # "path/inside/package.py[:function]" -> allowed lines


def problems() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        name = str(path.relative_to(ROOT))
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > EXCEPTIONS.get(name, MAX_MODULE_LINES):
            found.append(f"{name}: {lines} lines (limit {MAX_MODULE_LINES}); split it by responsibility")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > EXCEPTIONS.get(f"{name}:{node.name}", MAX_FUNCTION_LINES):
                    limit = MAX_FUNCTION_LINES
                    found.append(f"{name}:{node.lineno} {node.name}(): {size} lines (limit {limit})")
    return found


if __name__ == "__main__":
    issues = problems()
    for issue in issues:
        print(issue)
    sys.exit(1 if issues else 0)
