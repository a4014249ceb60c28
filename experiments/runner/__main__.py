"""``python -m experiments.runner``: the command line (experiments/runner/cli.py)."""
import sys

from .cli import main

sys.exit(main())
