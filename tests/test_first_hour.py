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
