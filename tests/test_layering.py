"""The package reads like the data flows: data -> models -> training -> loading -> analysis -> report -> commands. No module
imports one of a later layer (function-level imports included), so there are no import cycles between layers;
the leaf utilities import nothing of the package but other leaves."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "convscope"
LEAVES = {"util", "runfolder"}
LAYERS = {"data": 1, "models": 2, "training": 3, "loading": 3.5, "analysis": 4, "report": 5, "commands": 6,
          "cli": 6, "__main__": 6, "__init__": 6}


def _layer(module: str) -> int:
    head = module.split(".")[1] if module.count(".") else "__init__"
    return 0 if head in LEAVES else LAYERS[head]


def _imports_of(node: ast.ImportFrom, module: str, package: str | None = None):
    """The absolute module a ``from ... import`` names, if it is convscope's."""
    package = package if package is not None else module.rsplit(".", 1)[0]
    if node.level:
        base = package.split(".")
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.startswith("convscope"):
        yield target


def _imports(path: Path, module: str):
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield from _imports_of(node, module, package)
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


def _public_analysis_names() -> set[str]:
    tree = ast.parse((PACKAGE / "analysis" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("convscope/analysis/__init__.py has no literal __all__")


def test_commands_use_only_the_public_analysis_api():
    """The package's own commands import convscope.analysis's entry points (its __all__), never a module or a
    helper inside it: what the commands need is what a user of the package gets."""
    public = _public_analysis_names()
    bad = []
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        module = f"convscope.commands.{path.stem}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = next(_imports_of(node, module), "")
                names = [a.name for a in node.names]
                if target == "convscope" and "analysis" in names:
                    bad.append(f"{path.name}:{node.lineno} imports the analysis package itself; import its names")
                elif target.startswith("convscope.analysis."):
                    bad.append(f"{path.name}:{node.lineno} imports {target} (a module inside convscope.analysis)")
                elif target == "convscope.analysis":
                    bad += [f"{path.name}:{node.lineno} imports {n}, not in convscope.analysis.__all__"
                            for n in names if n not in public]
            elif isinstance(node, ast.Import):
                bad += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                        if a.name.startswith("convscope.analysis")]
    assert not bad, "\n".join(bad)


def test_the_public_analysis_names_exist():
    import convscope.analysis as analysis

    assert sorted(n for n in _public_analysis_names() if not hasattr(analysis, n)) == []


def _module_graph() -> dict[str, set[str]]:
    """convscope's modules -> the convscope modules each imports (function-level imports included; ``from . import
    x`` counts as the module ``x``)."""
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        mods[".".join(rel.parts).removesuffix(".__init__") if path.name == "__init__.py" else ".".join(rel.parts)] = path
    graph = {}
    for module, path in mods.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                for target in _imports_of(node, module, package):
                    subs = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods}
                    out |= subs or {target}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name in mods}
        graph[module] = {t for t in out if t in mods and t != module}
    return graph


def test_no_import_circle_anywhere():
    """Not between layers (above) and not inside one either (report/site <-> sections <-> compare was one, hidden by
    function-level imports): every strongly connected component of the import graph is a single module."""
    graph, index, low, stack, on, circles = _module_graph(), {}, {}, [], set(), []

    def visit(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles
