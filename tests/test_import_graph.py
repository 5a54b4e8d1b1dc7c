"""The package's import graph, read from the source with ``ast`` (nothing is imported):
no module imports itself through others, and the layers of ARCHITECTURE.md hold.

Every import statement counts, also those inside functions: an import deferred to
dodge a cycle is still a cycle. Only imports under ``if TYPE_CHECKING:`` do not: they
never run (an annotation names a type without depending on its module). An import of
a package counts as an import of its ``__init__``; ``from package import name`` as an
import of the submodule ``package.name`` where there is one. Importing a submodule
does not count as an import of the packages above it (Python runs their
``__init__`` first, but they do not depend on it).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "earthgraph"

# (importing layers, what they must not import), by module-name prefix: ARCHITECTURE.md's
# layering. The model's parts (encoders, processors, decoders) sit below the model that
# assembles them; only training wires the model to Lightning, logging and data.
LAYERS = (
    (("earthgraph.data", "earthgraph.graphs"),
     ("earthgraph.encoders", "earthgraph.processors", "earthgraph.decoders", "earthgraph.models",
      "earthgraph.training", "earthgraph.scoring", "earthgraph.evaluate")),
    (("earthgraph.scoring",),
     ("earthgraph.models", "earthgraph.encoders", "earthgraph.processors",
      "earthgraph.decoders", "earthgraph.training", "earthgraph.evaluate")),
    (("earthgraph.encoders", "earthgraph.processors", "earthgraph.decoders", "earthgraph.layers"),
     ("earthgraph.models", "earthgraph.training", "earthgraph.scoring",
      "earthgraph.evaluate")),
    (("earthgraph.models",),
     ("earthgraph.training", "earthgraph.scoring", "earthgraph.evaluate")),
    (("earthgraph.kernels",),
     ("earthgraph.data", "earthgraph.graphs", "earthgraph.encoders", "earthgraph.processors",
      "earthgraph.decoders", "earthgraph.models", "earthgraph.training",
      "earthgraph.scoring", "earthgraph.evaluate")),
)
LIGHTNING = ("lightning", "pytorch_lightning", "lightning_fabric")
LIGHTNING_ALLOWED = ("earthgraph.training", "earthgraph.evaluate")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_names(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for every ``.py`` file under the package ``root``;
    a package's ``__init__.py`` is named as the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(node: ast.AST):
    """Every node under ``node`` but the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
        else:
            yield from _runtime_nodes(child)


def imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every dotted name the module's import statements name, relative ones made absolute:
    ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a.b`` (a submodule, or a name in ``a``)."""
    names = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[:len(package) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """({module: the package's modules it imports}, {module: the top-level names of the
    outside packages it imports}) for the package at ``root``."""
    modules = module_names(root)
    graph, outside = {}, {}
    for module, path in modules.items():
        names = imported_names(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py")
        internal = set()
        for name in names:
            if not _within(name, (root.name,)):
                outside.setdefault(module, set()).add(name.split(".")[0])
                continue
            parts = name.split(".")  # the longest prefix that is a module: a submodule or a package
            while ".".join(parts) not in modules:
                parts.pop()
            if ".".join(parts) != module:
                internal.add(".".join(parts))
        graph[module] = internal
    return graph, outside


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def layering_violations(graph: dict[str, set[str]], outside: dict[str, set[str]]) -> list[str]:
    """``"a imports b (rule)"`` for every import against :data:`LAYERS` or the Lightning rule."""
    found = []
    for module, targets in sorted(graph.items()):
        for importers, forbidden in LAYERS:
            if _within(module, importers):
                found += [f"{module} imports {t} ({', '.join(importers)} must not import {', '.join(forbidden)})"
                          for t in sorted(targets) if _within(t, forbidden)]
    for module, names in sorted(outside.items()):
        if not _within(module, LIGHTNING_ALLOWED):
            found += [f"{module} imports {n} (only {', '.join(LIGHTNING_ALLOWED)} may import Lightning)"
                      for n in sorted(names & set(LIGHTNING))]
    return found


def test_the_package_has_no_import_cycle():
    graph, _ = import_graph(PACKAGE_ROOT)
    assert len(graph) > 100, "every module is read"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle:\n  " + "\n  -> ".join(cycle)


def test_the_layers_import_only_what_architecture_md_allows():
    graph, outside = import_graph(PACKAGE_ROOT)
    assert "lightning" in outside["earthgraph.training.module"], "outside imports are seen"
    violations = layering_violations(graph, outside)
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_imports_resolve_relative_package_and_submodule_forms(tmp_path):
    """``from . import x``, ``from ..pkg import name``, ``import a.b.c``; type-checking imports left out."""
    pkg = tmp_path / "earthgraph"
    for rel, text in {"__init__.py": "", "kernels/__init__.py": "from .ops import f\n", "kernels/ops.py": "",
                      "graphs/__init__.py": "", "graphs/sphere.py": "",
                      "graphs/edges.py": ("from . import sphere\nfrom ..kernels import f\n"
                                          "import earthgraph.kernels.ops\nimport numpy as np\n"
                                          "if TYPE_CHECKING:\n    from earthgraph.graphs import mesh\n")}.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    graph, outside = import_graph(pkg)
    assert graph["earthgraph.graphs.edges"] == {"earthgraph.graphs.sphere", "earthgraph.kernels",
                                               "earthgraph.kernels.ops"}
    assert graph["earthgraph.kernels"] == {"earthgraph.kernels.ops"}
    assert outside == {"earthgraph.graphs.edges": {"numpy"}}


def test_a_planted_cycle_and_planted_upward_imports_are_caught(tmp_path):
    """Negative control: the checks fail on a copy of the package with violations added."""
    copy = tmp_path / "earthgraph"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so", "build"))
    plants = {"graphs/sphere.py": "from . import edges\n",                # edges imports sphere: a cycle
              "data/batch.py": "from ..training import datamodule\n",     # data reaching up to training
              "scoring/metrics.py": "import earthgraph.processors\n",     # scoring importing a model part
              "processors/interaction.py": "import lightning.pytorch as pl\n"}  # Lightning outside training
    for rel, line in plants.items():
        with open(copy / rel, "a") as f:
            f.write("\n\ndef _planted():\n    " + line)
    graph, outside = import_graph(copy)
    cycle = find_cycle(graph)
    assert cycle is not None and {"earthgraph.graphs.sphere", "earthgraph.graphs.edges"} <= set(cycle)
    violations = "\n".join(layering_violations(graph, outside))
    assert "earthgraph.data.batch imports earthgraph.training.datamodule" in violations
    assert "earthgraph.scoring.metrics imports earthgraph.processors " in violations
    assert "earthgraph.processors.interaction imports lightning" in violations
