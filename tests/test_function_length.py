"""No function in convscope/ longer than 80 lines of code (the docstring, blank and comment-only lines not counted),
and the inspect command's run() a client of the analysis, report and runfolder: at most 70."""
import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "convscope"
LONGEST = 80


def _code_lines(source: str) -> set[int]:
    """The lines holding a token other than a comment, a string standing alone (a docstring) or a line break."""
    lines, previous = set(), tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER):
            previous = tok.type if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) else previous
            continue
        if tok.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            previous = tokenize.STRING  # a statement that is only a string: a docstring
            continue
        if previous != tokenize.STRING or tok.type != tokenize.STRING:
            lines.update(range(tok.start[0], tok.end[0] + 1))
        previous = tok.type
    return lines


def function_lengths(path: Path) -> dict[str, int]:
    """Each function's (and method's) lines of code, nested functions counted in their parent too."""
    source = path.read_text()
    code = _code_lines(source)
    out = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            span = range(node.lineno, node.end_lineno + 1)
            out[f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"] = sum(1 for n in span if n in code)
    return out


def test_no_function_is_longer_than_80_lines_of_code():
    long = {name: n for path in sorted(PACKAGE.rglob("*.py")) for name, n in function_lengths(path).items()
            if n > LONGEST}
    assert not long, long


def test_inspect_run_is_a_client():
    lengths = function_lengths(PACKAGE / "commands" / "inspect.py")
    run = next(n for name, n in lengths.items() if name.endswith(" run"))
    assert run <= 70, run


def test_the_count_skips_docstrings_comments_and_blank_lines():
    src = 'def f():\n    """doc\n    more"""\n\n    # note\n    x = (1,\n         2)\n    return x\n'
    assert sorted(_code_lines(src)) == [1, 6, 7, 8]
