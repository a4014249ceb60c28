"""The package reads like the data flows: data -> models -> train -> analysis -> report -> commands. No module
imports one of a later layer (function-level imports included), so there are no import cycles between layers;
the leaf utilities import nothing of the package but other leaves."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "convscope"
LEAVES = {"errors", "progress", "locks", "metrics", "checkpoint", "runfolder", "dist"}
LAYERS = {"data": 1, "models": 2, "config": 3, "optim": 3, "train": 3, "evaluation": 3, "runs": 3, "zoo": 3,
          "analysis": 4,
          "report": 5, "commands": 6, "cli": 6, "__main__": 6, "__init__": 6}


def _layer(module: str) -> int:
    head = module.split(".")[1] if module.count(".") else "__init__"
    return 0 if head in LEAVES else LAYERS[head]


def _imports(path: Path, module: str):
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("convscope"):
                yield target
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("convscope"))


def test_no_module_imports_a_later_layer():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__") if path.name == "__init__.py" else ".".join(rel.parts)
        if module == "convscope":
            continue  # the package's own __init__ re-exports
        mine = _layer(module)
        for target in _imports(path, module):
            if target == "convscope":
                continue
            theirs = _layer(target)
            if theirs > mine or (mine == 0 and theirs != 0):
                bad.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    assert not bad, "\n".join(bad)
