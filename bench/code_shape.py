"""The shape of the code, for reviews: the longest functions and the import graph between corpusslim modules.

    python bench/code_shape.py [--top 10] [--root .]

Prints the ``top`` longest functions (lines, from ``def`` to the last line of the body) and every import cycle
among the modules of ``pipeline/`` and ``filters/`` (installed as ``corpusslim`` and ``corpusslim.filters``).
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

FOLDERS = {"pipeline": "corpusslim", "filters": "corpusslim.filters"}


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every Python file of the package folders."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((package, *parts))] = path
    return found


def longest_functions(files: dict[str, Path], top: int) -> list[tuple[int, str]]:
    sizes = []
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                sizes.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    return sorted(sizes, reverse=True)[:top]


def _runtime_nodes(node: ast.AST):
    """Every node of a module but those under ``if TYPE_CHECKING:`` (annotations only, never imported)."""
    yield node
    if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
        return
    for child in ast.iter_child_nodes(node):
        yield from _runtime_nodes(child)


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the corpusslim modules it imports when it runs (at module level or inside functions)."""
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("corpusslim"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in files else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in files}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args()
    files = modules(Path(args.root))
    print(f"{len(files)} modules; the {args.top} longest functions (lines):")
    for size, name in longest_functions(files, args.top):
        print(f"  {size:4d}  {name}")
    found = cycles(import_graph(files))
    print("import cycles: " + ("; ".join(" <-> ".join(c) for c in found) if found else "none"))


if __name__ == "__main__":
    main()
