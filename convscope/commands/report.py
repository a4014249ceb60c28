"""``convscope report RUN_DIR``: a static, self-contained HTML report of a run (curves, tables, atlas explorer)."""
from __future__ import annotations

import argparse

HELP = "build a static HTML report of a run folder (curves, tables, feature explorer); works offline"
DESCRIPTION = """Build one self-contained folder (index.html + images + a little JavaScript) from what train,
evaluate, predict, inspect, occlusion, invariance, correspondence, transfer and retrieval wrote into RUN_DIR
(RUN_DIR/config.json, metrics.jsonl, eval.json, predictions.json, and the folders inspect/, occlusion/,
invariance/, correspondence/, transfer/, retrieval/). Sections without data say which command makes them.
Open the printed index.html in a browser; no server or network is needed (or use 'convscope serve')."""
ORDER = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder (the --out-dir of convscope train)")
    parser.add_argument("--out", default=None, help="site folder (default: RUN_DIR/report)")


def build(run_dir: str, out: str | None = None, problems: list[str] | None = None):
    """Build the report of ``run_dir`` or raise a :class:`UserError` saying why it cannot be built."""
    from pathlib import Path

    from ..errors import UserError, expect_folder
    from ..locks import beside, claim
    from ..report import KNOWN_OUTPUTS, build_report

    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"no run folder at {run_dir}")
    if not any((run / name).exists() for name in KNOWN_OUTPUTS):
        raise UserError(f"{run_dir} holds none of the files a report is built from ({', '.join(KNOWN_OUTPUTS)}); "
                        f"is it the --out-dir of 'convscope train'?")
    site = expect_folder(out or run / "report", "the report folder")
    try:
        with claim(beside(site), str(site), "another report is being built there; wait for it"):
            return build_report(run, out, problems=problems)
    except FileExistsError as err:
        raise UserError(str(err)) from None
    except PermissionError as err:
        raise UserError(f"cannot write the report: {err}") from None


def run(args: argparse.Namespace) -> int:
    import sys

    problems: list[str] = []
    index = build(args.run_dir, args.out, problems)
    print(f"report: {index}")
    print(f"open it: file://{index}")
    for problem in problems:
        print(f"convscope report: error: {problem}", file=sys.stderr)
    return 1 if problems else 0
