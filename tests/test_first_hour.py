"""What a new user meets first: one-line errors before torch loads, help pages, label wording, the shared cache,
the demo's messages (issue 33)."""
import subprocess
import sys

import pytest

from convscope.cli import build_parser

_NO_TORCH = """
import sys
from convscope.cli import main
rc = main(sys.argv[1:])
assert rc == 2, rc
print("torch loaded" if "torch" in sys.modules else "torch not loaded")
"""


@pytest.mark.parametrize("argv", [
    ["inspect", "--checkpoint", "missing.pt", "--data", "."],
    ["occlusion", "missing.jpg", "--checkpoint", "missing.pt"],
    ["evaluate", "missing.pt", "--data-root", "."],
    ["predict", "missing.jpg", "--model", "torchvision:alexnet"],
    ["retrieval", "--model", "torchvision:alexnet", "--data", "no-such-folder"],
    ["stats", "no-such-folder"],
])
def test_a_wrong_path_fails_before_torch_is_imported(argv, tmp_path):
    done = subprocess.run([sys.executable, "-c", _NO_TORCH, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "torch not loaded", done.stderr
    assert "not found" in done.stderr and done.stderr.count("\n") == 1


def _command_parsers():
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices.items()


def test_every_option_is_explained_and_no_default_is_empty_or_doubled():
    import argparse

    for name, parser in _command_parsers():
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help and action.help.strip(), (name, action.option_strings or action.dest)
        text = parser.format_help()
        for empty in ("(default: None)", "(default: )", "(default: False)", "(default: [])"):
            assert empty not in text, (name, empty)
        for line in text.splitlines():  # a default told in words is not told again by the formatter
            assert not ("default" in line.split("(default:")[0] and "(default:" in line), (name, line)


def test_examples_keep_their_own_lines():
    text = build_parser("report")._subparsers._group_actions[0].choices["report"].format_help()
    assert "\n  convscope report RUN --compare e5" in text


def test_both_spellings_of_a_choice_are_accepted():
    args = build_parser("evaluate").parse_args(["evaluate", "x.pt", "--data-root", ".", "--views", "centre"])
    assert args.views == "center"
    args = build_parser("occlusion").parse_args(["occlusion", "a.jpg", "--checkpoint", "x.pt", "--fill", "gray"])
    assert args.fill == "grey"
