"""``convscope report RUN_DIR``: a static, self-contained HTML report of a run (curves, tables, atlas explorer)."""
from __future__ import annotations

import argparse

HELP = "build a static HTML report of a run folder (curves, tables, feature explorer); works offline"
DESCRIPTION = """Build one self-contained folder (index.html + images + a little JavaScript) from what train,
evaluate, predict, inspect, occlusion, invariance, correspondence, transfer and retrieval wrote into RUN_DIR
(RUN_DIR/config.json, metrics.jsonl, eval.json, predictions.json, and the folders inspect/, occlusion/,
invariance/, correspondence/, transfer/, retrieval/). Sections without data say which command makes them.
Open the printed index.html in a browser; no server or network is needed (or use 'convscope serve').

--compare OTHER adds a side-by-side section (ZF Fig. 6): both models' conv1 filters, their frequency content and
dead filters, and per layer a mosaic of every drawn map's top-1 projection and patch. OTHER is another folder
holding inspect/ (a run folder, an analysis/<model>-<weights>/ folder). Two epochs of one run:
  convscope inspect --checkpoint RUN/epochs/epoch_005.pt --data DATA --out e5/inspect
  convscope report RUN --compare e5"""
ORDER = 70
PATHS: dict[str, str] = {}  # RUN_DIR and --compare are folders it checks itself (see commands._checks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder (the --out-dir of convscope train)")
    parser.add_argument("--out", default=None, help="site folder (default: RUN_DIR/report)")
    parser.add_argument("--compare", default=None, metavar="OTHER",
                        help="another folder holding inspect/ (a run, an analysis folder) to show side by side")


def build(run_dir: str, out: str | None = None, problems: list[str] | None = None, compare: str | None = None):
    """Build the report of ``run_dir`` or raise a :class:`UserError` saying why it cannot be built."""
    from pathlib import Path

    from ..util.errors import UserError, expect_folder
    from ..util.locks import beside, claim
    from ..report import KNOWN_OUTPUTS, build_report

    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"no run folder at {run_dir}")
    if not any((run / name).exists() for name in KNOWN_OUTPUTS):
        raise UserError(f"{run_dir} holds none of the files a report is built from ({', '.join(KNOWN_OUTPUTS)}); "
                        f"is it the --out-dir of 'convscope train'?")
    if compare is not None:
        other = Path(compare)
        if not other.is_dir():
            raise UserError(f"--compare: no folder at {compare}")
        if not (other / "inspect" / "index.json").is_file():
            hint = (f"; it is an inspect folder itself: pass its parent, --compare {other.resolve().parent}"
                    if (other / "index.json").is_file() and other.name == "inspect" else
                    "; make it with: convscope inspect --checkpoint CKPT --data DATA --out "
                    f"{other / 'inspect'}")
            raise UserError(f"--compare: {compare} has no inspect/index.json{hint}")
        if other.resolve() == run.resolve():
            raise UserError("--compare: that is the run itself; give another run or analysis folder")
    site = expect_folder(out or run / "report", "the report folder")
    try:
        with claim(beside(site), str(site), "another report is being built there; wait for it"):
            return build_report(run, out, problems=problems, compare=compare)
    except FileExistsError as err:
        raise UserError(str(err)) from None
    except PermissionError as err:
        raise UserError(f"cannot write the report: {err}") from None


def run(args: argparse.Namespace) -> int:
    import sys

    problems: list[str] = []
    index = build(args.run_dir, args.out, problems, args.compare)
    print(f"report: {index}")
    print(f"open it: file://{index}")
    for problem in problems:
        print(f"convscope report: error: {problem}", file=sys.stderr)
    return 1 if problems else 0
