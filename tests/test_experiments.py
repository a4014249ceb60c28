"""The experiments runner's bookkeeping: finished runs are reused, interrupted ones resumed, results recorded per
(variant, seed), and the RESULTS.md table generated from the results file."""
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

from convscope.training.config import TrainConfig, config_to_json
from convscope.runfolder import to_json, write_record
from convscope.runfolder.records import EvalRecord, EvalRow, MetricsRow
from experiments import runner
from experiments.runner import Experiment, catalogue, observed, stats, table

EXP = Experiment("toy", "a claim", "-1 point", "cifar10", "cifar10-jpeg", dict(epochs=2),
                 {"off": dict(model_options=dict(lrn=False)), "on": dict(model_options=dict(lrn=True))},
                 seeds=(0, 1), scale="tiny")


def _metrics(epoch, val_top1_err, train_err=0.5, threads=2):
    """One line of metrics.jsonl as train writes it."""
    return to_json(MetricsRow(epoch=epoch, step=10 * epoch, lr=0.01, train_loss=1.0, train_err=train_err,
                              images_per_s=100.0, val_top1_err=val_top1_err, val_top5_err=0.1, val_loss=1.0,
                              val_count=10, filter_smoothness={}, torch_threads=threads), indent=None)


def _eval(path, top1_err, top5_err=0.0):
    """An eval.json as evaluate writes it (centre view)."""
    write_record(path, EvalRecord(checkpoints=["x.pt"], data_root="d", split="val", results=[
        EvalRow(views="center", models=1, top1_err=top1_err, top5_err=top5_err, loss=1.0, count=10)]))


def _fake_training(errors, calls):
    """Stands in for ``convscope train``: writes the run folder's config and per-epoch metrics."""

    def run(cmd):
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out-dir") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(config_to_json(TrainConfig(epochs=2)))
        key = (out.parent.name, int(out.name[4:]))
        (out / "metrics.jsonl").write_text("".join(_metrics(e, errors[key] + 0.1 * (2 - e)) for e in (1, 2)))
        return SimpleNamespace(returncode=0)

    return run


def test_runs_are_reused_and_resumed_and_results_recorded(tmp_path):
    errors = {("off", 0): 0.30, ("off", 1): 0.32, ("on", 0): 0.25, ("on", 1): 0.27}
    calls, results = [], tmp_path / "results.json"
    rows = runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                                 runner=_fake_training(errors, calls))
    assert len(calls) == 4 and [r["value"] for r in rows] == [0.30, 0.25, 0.32, 0.27]  # seed-major order
    assert all(r["torch_threads"] == [2] for r in rows)  # what each run trained with: a run repeats only at it
    assert "--model-options" in calls[0] and "lrn=False" in calls[0] and "--seed" in calls[0]
    calls.clear()
    runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                          runner=_fake_training(errors, calls))
    assert calls == []  # every run finished: nothing trains again
    # an interrupted run (checkpoint, too few epochs logged) is continued with --resume, the rest reused
    folder = runner.run_folder(tmp_path / "runs", EXP, "on", 1)
    (folder / "metrics.jsonl").write_text(_metrics(1, 0.4, threads=1))
    (folder / "last.pt").write_bytes(b"x")

    def resumed(cmd):  # appends epoch 2 to the interrupted run's epoch 1, at another thread count
        calls.append(cmd)
        with open(folder / "metrics.jsonl", "a") as f:
            f.write(_metrics(2, 0.27))
        return SimpleNamespace(returncode=0)

    runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results, runner=resumed)
    assert len(calls) == 1 and calls[0][-1] == "--resume" and str(folder) in calls[0]
    saved = json.loads(results.read_text())
    assert len(saved) == 4 and {(r["variant"], r["seed"]) for r in saved} == set(errors)
    assert [r["torch_threads"] for r in saved if (r["variant"], r["seed"]) == ("on", 1)] == [[1, 2]]


def test_table_is_generated_from_the_results_file(tmp_path, monkeypatch):
    monkeypatch.setattr(catalogue, "EXPERIMENTS", {"toy": EXP})
    rows = [dict(experiment="toy", variant=v, seed=s, value=e) for (v, s), e in
            {("off", 0): 0.30, ("off", 1): 0.32, ("on", 0): 0.25, ("on", 1): 0.27}.items()]
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nhand-written text stays\n")
    runner.update_results_md(rows, md)
    runner.update_results_md(rows, md)  # idempotent: one table, replaced in place
    text = md.read_text()
    assert text.count(runner.TABLE_START) == 1 and "hand-written text stays" in text
    assert "off: 31.0 ± 1.4%, n=2" in text and "on: 26.0 ± 1.4%, n=2" in text
    assert "yes: on -5.0 ± 0.0 points vs off (paired, 2 seeds)" in text  # both seeds' differences are -5 points
    rows[2]["value"] = 0.40  # now "on" is worse: differences +10, +9 points, mean 9.5, sd 0.71, SE 0.5, t(1) 12.71
    rows[3]["value"] = 0.41
    runner.update_results_md(rows, md)
    assert "no (opposite): on +9.5 ± 6.4 points vs off (paired, 2 seeds)" in md.read_text()


def test_sweep_groups_report_their_best_variant_and_unreached_thresholds():
    exp = Experiment("sweep", "c", "p", "cifar10", "cifar10-jpeg", {}, {"a/1": {}, "a/2": {}, "b/1": {}},
                     metric="epochs_to_train_err_25", groups={"a/": "A", "b/": "B"})
    rows = [dict(experiment="sweep", variant="a/1", seed=0, value=6.0), dict(experiment="sweep", variant="a/2",
            seed=0, value=3.0), dict(experiment="sweep", variant="b/1", seed=0, value=None)]
    summary = runner.summarize(exp, rows)
    assert summary["A"][0] == "A: a/2" and summary["A"][1] == 3.0
    assert summary["B"][3] == 0 and "not reached" in table._fmt(exp, *summary["B"][1:])
    assert runner.measure("epochs_to_train_err_25", [SimpleNamespace(epoch=1, train_err=0.3),
                                                     SimpleNamespace(epoch=2, train_err=0.2)]) == 2


def test_demo_measured_rows_come_from_the_demo_files(tmp_path, monkeypatch):
    monkeypatch.setattr(observed, "DEMO", tmp_path)
    assert observed._eval_row()[0] == "not run yet"
    _eval(tmp_path / "eval.json", 0.2568, 0.0385)
    assert observed._eval_row()[0].startswith("center: 25.7% / 3.9%")
    assert "25.7%" in runner.render_table([])


def test_verdicts_follow_the_named_comparisons():
    exp = Experiment("c", "c", "p", "cifar10", "cifar10-jpeg", {}, {"base": {}, "a": {}, "ctrl": {}},
                     compare=(("a", "base"), ("a", "ctrl")))
    rows = [dict(experiment="c", variant=v, seed=s, value=x) for v, xs in
            {"base": (0.5, 0.52), "a": (0.3, 0.31), "ctrl": (0.31, 0.318)}.items() for s, x in enumerate(xs)]
    text = runner.verdict(exp, runner.summarize(exp, rows), rows)
    # a - base per seed: -20, -21 points (mean -20.5, sd 0.71, half-width 12.71 x 0.5 = 6.4); a - ctrl: -1.0, -0.8
    # (mean -0.9, sd 0.14, half-width 12.71 x 0.1 = 1.3: within)
    assert text.startswith("yes: a -20.5 ± 6.4 points vs base (paired, 2 seeds)")
    assert "not decided (the paper's direction, within the interval): a -0.9 ± 1.3 points vs ctrl" in text


def test_second_measurement_reports_each_groups_lowest():
    exp = Experiment("sw", "c", "p", "cifar10", "cifar10-jpeg", {}, {"a/1": {}, "a/2": {}, "b/1": {}},
                     metric="epochs_to_train_err_25", groups={"a/": "A (best)", "b/": "B (best)"},
                     also="final_train_err")
    rows = [dict(experiment="sw", variant=v, seed=0, value=None, final_train_err=e)
            for v, e in (("a/1", 0.40), ("a/2", 0.30), ("b/1", 0.50))]
    text = table._also(exp, rows)
    assert "A: final train err 30.0" in text and "(a/2, n=1)" in text and "B: final train err 50.0" in text
    # the line is the group's best cell's: one that reaches the threshold beats a lower final error that does not
    rows[0]["value"] = 9.0
    assert "A: final train err 40.0 ± 0.0% (a/1, n=1)" in table._also(exp, rows)
    assert runner.measure("final_train_err", [SimpleNamespace(train_err=0.5),
                                             SimpleNamespace(train_err=0.2)]) == 0.2


def test_every_variant_command_parses_back_to_its_overrides():
    """The runner writes each variant's model options on the command line; the CLI must read back the same values
    (tuples such as remove=conv3+conv4, mappings such as conv_channels=conv3:512+conv4:1024)."""
    from convscope.training.config import parse_options

    for exp in runner.EXPERIMENTS.values():
        for variant in exp.variants:
            cmd = runner.train_command(exp, variant, 0, Path("data"), Path("runs"))
            want = runner.overrides(exp, variant, 0).get("model_options")
            if want:  # a one-item tuple is written as the item (the builders read remove="conv3" alike)
                want = {k: v[0] if isinstance(v, tuple) and len(v) == 1 else v for k, v in want.items()}
                assert parse_options(cmd[cmd.index("--model-options") + 1]) == want


def test_ensemble_evaluates_members_alone_and_in_pairs_once(tmp_path, monkeypatch):
    ens = Experiment("toy_ens", "ensembles help", "-2 points", "cifar10", "cifar10-jpeg", {},
                     {"one model": {}, "two models (each pair)": {}}, metric="ensemble_top1_err", members=("toy", "on"))
    monkeypatch.setattr(catalogue, "EXPERIMENTS", {"toy": EXP, "toy_ens": ens})
    results = tmp_path / "results.json"
    try:
        runner.run_experiment(ens, tmp_path / "data", tmp_path / "runs", results=results, runner=None)
        raise AssertionError("an ensemble without its member runs must stop")
    except SystemExit as err:
        assert "run toy first" in str(err)
    runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                          runner=_fake_training({("off", 0): .3, ("off", 1): .3, ("on", 0): .25, ("on", 1): .27}, []))
    calls = []

    def fake_evaluate(cmd):  # error 0.2 per model alone, 0.15 for a pair
        calls.append(cmd)
        models = [c for c in cmd if c.endswith("last.pt")]
        out = Path(cmd[cmd.index("--out") + 1])
        _eval(out, 0.2 if len(models) == 1 else 0.15)
        return SimpleNamespace(returncode=0)

    rows = runner.run_experiment(ens, tmp_path / "data", tmp_path / "runs", results=results, runner=fake_evaluate)
    assert len(calls) == 3 and sum(len([c for c in cmd if c.endswith("last.pt")]) for cmd in calls) == 4
    assert [(r["variant"], r["value"]) for r in rows] == [("one model", 0.2), ("one model", 0.2),
                                                           ("two models (each pair)", 0.15)]
    calls.clear()
    runner.run_experiment(ens, tmp_path / "data", tmp_path / "runs", results=results, runner=fake_evaluate)
    assert calls == []  # evaluations are kept and reused


def test_removal_ablations_are_judged_in_the_papers_direction():
    """Removing a layer should raise the error (ZF Table 3): a rise is 'yes', a fall is 'no'; a variant name with a
    colon stays whole."""
    name = "no conv3 (AlexNet §1: one middle layer)"
    exp = Experiment("abl", "removing layers hurts", "+2 points", "imagenette", "imagenette2-160", {},
                     {"full": {}, name: {}}, seeds=(0, 1), worse=(name,))
    rows = [dict(experiment="abl", variant=v, seed=s, value=e) for v, s, e in
            [("full", 0, 0.30), ("full", 1, 0.31), (name, 0, 0.35), (name, 1, 0.36)]]
    text = runner.verdict(exp, runner.summarize(exp, rows), rows)
    assert text.startswith("yes:") and name in text and "+5.0 ± 0.0 points" in text
    for r in rows[2:]:
        r["value"] -= 0.10
    assert runner.verdict(exp, runner.summarize(exp, rows), rows).startswith("no (opposite)")


def test_differences_are_paired_where_seeds_are_and_borrow_a_spread_where_one_side_has_one_seed():
    from pytest import approx

    # seeds move both variants together (30/40/50%); the per-seed differences -2, -3, -2.5 points are consistent:
    # mean -2.5, sd 0.5, SE 0.289, t(2) = 4.30 -> half-width 1.24 points: decided
    mine, base = {0: 0.30, 1: 0.40, 2: 0.50}, {0: 0.32, 1: 0.43, 2: 0.525}
    d = runner.difference(mine, base)
    assert (d.diff, d.half, d.how, d.decided) == (approx(-0.025), approx(0.012413, abs=1e-5), "paired, 3 seeds", True)
    # the same numbers unpaired (Welch): SE sqrt(0.1^2/3 + 0.10259^2/3) = 0.0827, df 3.997 -> t = 2.777 (scipy): not decided
    d = runner.difference(mine, base, paired=False)
    assert (d.diff, d.half, d.decided) == (approx(-0.025), approx(0.22971, abs=1e-4), False)
    # one seed against three: the three seeds' spread (sd 2.65 points) stands for both sides:
    # SE sqrt(0.0007 + 0.0007/3) = 0.03055, df 3.2 -> t = 3.07: half-width 9.4 points
    d = runner.difference({0: 0.30}, {0: 0.36, 1: 0.32, 2: 0.31})
    assert (d.diff, d.half, d.decided) == (approx(-0.03), approx(0.09388, abs=1e-4), False)
    assert d.how == "1 vs 3 seeds, the 3-seed spread assumed for both"
    none = runner.difference({0: 0.30}, {0: 0.40})
    assert not none.decided and stats._word(True, none) == "not decided (one seed each: no spread)"
    # a threshold not reached within the run's 15 epochs counts as epoch 16 (a lower bound)
    exp = Experiment("e", "c", "p", "cifar10", "cifar10-jpeg", dict(epochs=15), {"a": {}}, metric="epochs_to_train_err_25")
    rows = [dict(experiment="e", variant="a", seed=0, value=9.0), dict(experiment="e", variant="a", seed=1, value=None)]
    assert runner.seed_values(exp, rows, "a") == {0: 9.0, 1: 16.0}


def test_a_control_says_what_the_gain_is_from():
    """LRN-like: the control (alpha = 0) alone gives the gain; the variant adds nothing beyond it."""
    exp = Experiment("n", "c", "p", "cifar10", "cifar10-jpeg", {}, {"without": {}, "ctrl": {}, "with": {}},
                     compare=(("with", "without"), ("ctrl", "without"), ("with", "ctrl")),
                     control=("with", "ctrl", "the rescaling"))
    values = {"without": (0.50, 0.52, 0.54), "ctrl": (0.40, 0.41, 0.42), "with": (0.39, 0.41, 0.425)}
    rows = [dict(experiment="n", variant=v, seed=s, value=x) for v, xs in values.items() for s, x in enumerate(xs)]
    text = runner.verdict(exp, runner.summarize(exp, rows), rows)
    # ctrl - without: -10, -11, -12 points (decided); with - ctrl: -1, 0, +0.5 points (mean -0.17: within)
    assert text.startswith("the gain over without is the rescaling: ctrl alone yes, with beyond it not decided")


def test_depth_verdict_can_say_no():
    layers = ["a", "b", "c"]
    assert observed._depth_verdict(layers, [0.40, 0.45, 0.30], [0.01] * 3).startswith(
        "no: accuracy falls with depth (a 40.0% -> c 30.0%, best b)")
    assert observed._depth_verdict(layers, [0.30, 0.35, 0.50], [0.01] * 3).startswith("yes: accuracy rises")
    assert observed._depth_verdict(layers, [0.40, 0.50, 0.405], [0.01] * 3).startswith("not decided")


def test_the_same_configuration_in_another_experiment_is_reused(tmp_path, monkeypatch):
    """A variant that trains exactly what another experiment's variant trains (the recipe's defaults spelled out or
    not) reuses that run for the same seed instead of training it again."""
    other = Experiment("other", "c", "p", "cifar10", "cifar10-jpeg", dict(epochs=2),
                       {"on, spelled out": dict(pca_alpha=0.1, model_options=dict(lrn=True)),
                        "wide": dict(model_options=dict(width=2))}, seeds=(0, 1))
    monkeypatch.setattr(catalogue, "EXPERIMENTS", {"toy": EXP, "other": other})
    assert [(o.name, v) for o, v in runner.twins(other, "on, spelled out")] == [("toy", "on")]
    errors = {(v, s): 0.3 for v in ("off", "on", "wide") for s in (0, 1)}
    calls, results = [], tmp_path / "results.json"
    runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                          runner=_fake_training(errors, calls))
    calls.clear()
    interrupted = runner.run_folder(tmp_path / "runs", other, "on, spelled out", 1)  # its own run, begun earlier
    interrupted.mkdir(parents=True)
    (interrupted / "last.pt").write_bytes(b"x")
    errors[interrupted.parent.name, 1] = 0.29
    rows = runner.run_experiment(other, tmp_path / "data", tmp_path / "runs", results=results,
                                 runner=_fake_training(errors, calls))
    # the new configuration trains, the interrupted run continues, the rest is reused
    assert len(calls) == 3 and sum("wide" in " ".join(c) for c in calls) == 2 and calls[1][-1] == "--resume"
    reused = {r["seed"]: r for r in rows if r["variant"] == "on, spelled out"}
    assert reused[0]["same_as"] == "toy/on" and reused[0]["value"] == 0.3
    assert "same_as" not in reused[1] and reused[1]["value"] == 0.29


def test_plot_has_a_panel_of_seeds_and_one_of_epoch_curves(tmp_path):
    errors = {("off", 0): 0.30, ("off", 1): 0.32, ("on", 0): 0.25, ("on", 1): 0.27}
    results = tmp_path / "results.json"
    rows = runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                                 runner=_fake_training(errors, []))
    curves = runner.epoch_curves(EXP, tmp_path / "runs", "val_top1_err")
    assert curves["on"] == [[0.35, 0.25], [0.37, 0.27]]  # one series per seed, epochs 1 and 2
    path = runner.plot_experiment(EXP, rows, tmp_path / "runs", tmp_path / "plots")
    assert path == tmp_path / "plots" / "toy.png" and path.read_bytes()[:4] == b"\x89PNG"
    assert runner.plot_experiment(EXP, [], tmp_path / "runs", tmp_path / "plots") is None
    # the curves are recorded with the results: the plot is the same once the run folders are gone
    recorded = runner.load_results(results)
    assert {(r["variant"], r["seed"]): r["curve"] for r in recorded}[("on", 1)] == [0.37, 0.27]
    shutil.rmtree(tmp_path / "runs")
    assert runner.epoch_curves(EXP, tmp_path / "runs", "val_top1_err", recorded) == curves
    assert runner.epoch_curves(EXP, tmp_path / "runs", "train_err", recorded) == {}  # not what was recorded


def test_zf_table3_at_24_epochs_trains_zf_table3s_configurations_for_twice_as_long():
    short, long = runner.EXPERIMENTS["zf_table3"], runner.EXPERIMENTS["zf_table3_24"]
    for variant in long.variants:
        a, b = runner.overrides(short, variant, 0), runner.overrides(long, variant, 0)
        assert (a.pop("epochs"), b.pop("epochs")) == (12, 24) and a == b
        assert (variant in long.worse) == (variant in short.worse)


def test_a_run_is_finished_at_its_epochs_its_stop_error_or_its_divergence(tmp_path):
    """read_run: all epochs logged, or stop_train_err reached (train's early stop), or the runner's diverged mark."""

    def run(name, errs, **cfg):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(config_to_json(TrainConfig(epochs=4, **cfg)))
        (folder / "metrics.jsonl").write_text("".join(to_json(MetricsRow(
            epoch=i + 1, step=i, lr=0.01, train_loss=1.0, train_err=e, images_per_s=1.0, val_top1_err=0.5,
            val_top5_err=0.1, val_loss=1.0, val_count=1, filter_smoothness={}), indent=None) for i, e in enumerate(errs)))
        return folder

    assert runner.read_run(run("short", [0.5, 0.4])) is None  # interrupted
    assert len(runner.read_run(run("all", [0.5, 0.4, 0.3, 0.26]))) == 4
    stopped = run("stopped", [0.5, 0.24], stop_train_err=0.25)
    assert runner.measure("epochs_to_train_err_25", runner.read_run(stopped)) == 2.0
    assert runner.read_run(run("not_yet", [0.5, 0.3], stop_train_err=0.25)) is None
    diverged = run("diverged", [0.9])
    (diverged / runner.DIVERGED).write_text("nan\n")
    assert runner.measure("epochs_to_train_err_25", runner.read_run(diverged)) is None
    empty = tmp_path / "diverged_at_once"
    empty.mkdir()
    (empty / runner.DIVERGED).write_text("nan\n")
    assert runner.read_run(empty) == [] and runner.measure("final_train_err", []) is None


def test_a_diverged_sweep_cell_counts_as_not_reached(tmp_path):
    """The runner marks a cell whose training exits with train's NaN code and goes on with the next cell."""
    exp = runner.EXPERIMENTS["relu_tanh_sweep"]
    calls = []

    def fake(cmd):
        calls.append(cmd)
        return SimpleNamespace(returncode=runner.NAN_EXIT)

    cells = list(exp.variants)[:2]
    rows = runner.run_experiment(exp, tmp_path / "data", tmp_path / "runs", variants=cells,
                                 results=tmp_path / "results.json", runner=fake)
    assert len(calls) == 2 and [r["value"] for r in rows] == [None, None]
    assert all((runner.run_folder(tmp_path / "runs", exp, v, 0) / runner.DIVERGED).is_file() for v in cells)
    runner.run_experiment(exp, tmp_path / "data", tmp_path / "runs", variants=cells,
                          results=tmp_path / "results.json", runner=fake)
    assert len(calls) == 2  # finished: not trained again


def test_init_scale_scales_the_initial_weights():
    import torch

    from convscope.models import get_model

    stds = {}
    for init, scale in (("paper", 1.0), ("paper", 3.0), ("kaiming", 1.0), ("kaiming", 0.5)):
        torch.manual_seed(0)
        m = get_model("cifar_convnet", num_classes=10, init=init, init_scale=scale, lrn=False)
        stds[init, scale] = m.features.conv2.weight.std().item()
    assert abs(stds["paper", 1.0] - 0.01) < 0.001 and abs(stds["paper", 3.0] / stds["paper", 1.0] - 3) < 1e-4
    fan_in = 32 * 5 * 5  # conv2 of layers-18pct: 32 -> 32 channels, 5x5
    assert abs(stds["kaiming", 1.0] - (2 / fan_in) ** 0.5) < 0.005
    assert abs(stds["kaiming", 0.5] / stds["kaiming", 1.0] - 0.5) < 1e-4


def _sweep(**kw):
    """A two-group lr sweep searched outward from lr 0.03 (the order of its variants)."""
    lrs = (0.03, 0.1, 0.01, 0.003)
    cells = {f"{g}/lr{lr:g}/{i}": dict(lr=lr) for lr in lrs for g in ("a", "b") for i in ("x", "y")}
    return Experiment("sw", "c", "p", "cifar10", "cifar10-jpeg", dict(epochs=2), cells, seeds=(0,),
                      metric="epochs_to_train_err_25", also="final_train_err", groups={"a/": "A", "b/": "B"},
                      bracket=True, **kw)


def test_an_lr_sweep_stops_once_each_groups_best_lr_is_bracketed(tmp_path):
    """Cells beyond a fully run lr next to the group's best lr are not run; a partly run neighbour, or a best lr at
    the edge of what ran, keeps the search going."""
    exp = _sweep()

    def row(v, err):
        return dict(experiment="sw", variant=v, seed=0, value=None, final_train_err=err)

    # a: best at 0.03, its 0.01 neighbour fully run -> 0.003 is outside; b: best at 0.01 -> 0.003 must run
    rows = [row(v, 0.3 if "lr0.03/" in v else 0.5) for v in exp.variants if v.startswith("a/") and "0.003" not in v]
    rows += [row(v, 0.6) for v in exp.variants if v.startswith("b/") and "0.003" not in v]
    rows[-1]["final_train_err"] = 0.2  # b/lr0.01/y
    assert runner.best_cells(exp, rows) == {"a/": "a/lr0.03/x", "b/": "b/lr0.01/y"}
    assert "every cell at lr 0.01 is worse" in runner.outside_bracket(exp, rows, "a/lr0.003/x")
    assert runner.outside_bracket(exp, rows, "b/lr0.003/x") is None
    partly = [r for r in rows if r["variant"] != "a/lr0.01/y"]
    assert runner.outside_bracket(exp, partly, "a/lr0.003/x") is None  # the neighbour is not fully run
    assert table._cells_run(exp, rows) == "cells run: 12 of 16; 2 outside the lr bracket; 2 not run yet"
    grid = runner.plot_experiment(exp, rows, tmp_path / "runs", tmp_path / "plots")  # lr x init per group
    assert grid.name == "sw.png" and grid.read_bytes()[:4] == b"\x89PNG"
    # a reached threshold beats any final error
    reached = [dict(r, value=9.0) if r["variant"] == "a/lr0.1/y" else r for r in rows]
    assert runner.best_cells(exp, reached)["a/"] == "a/lr0.1/y"
    # the runner skips the outside cells and runs the rest
    results = tmp_path / "results.json"
    results.write_text(json.dumps(rows))
    calls = []

    def fake(cmd):
        calls.append(cmd[cmd.index("--out-dir") + 1])
        return SimpleNamespace(returncode=runner.NAN_EXIT)

    last = [v for v in exp.variants if "lr0.003/" in v]
    runner.run_experiment(exp, tmp_path / "data", tmp_path / "runs", results=results, runner=fake, variants=last)
    assert [Path(c).parent.name for c in calls] == ["b_lr0.003_x", "b_lr0.003_y"]


def test_a_longer_run_of_the_same_configuration_continues_the_shorter_one(tmp_path, monkeypatch):
    """An experiment that ``continues`` another copies its finished shorter run and resumes it with more epochs;
    another configuration (or an unfinished short run) trains from the start."""
    short = Experiment("short", "c", "p", "cifar10", "cifar10-jpeg", dict(epochs=2),
                       {"v": dict(lr=0.01), "w": dict(lr=0.02)}, seeds=(0,))
    long = Experiment("long", "c", "p", "cifar10", "cifar10-jpeg", dict(epochs=4),
                      {"v": dict(lr=0.01), "w": dict(lr=0.03)}, seeds=(0, 1), continues="short")
    monkeypatch.setattr(catalogue, "EXPERIMENTS", {"short": short, "long": long})
    calls = []

    def fake(cmd):  # trains to --epochs (resumed: from the epochs already logged)
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out-dir") + 1])
        out.mkdir(parents=True, exist_ok=True)
        epochs = int(cmd[cmd.index("--epochs") + 1])
        done = (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").is_file() else ""
        first = done.count("\n") + 1
        (out / "metrics.jsonl").write_text(done + "".join(_metrics(e, 0.5 - 0.01 * e) for e in range(first, epochs + 1)))
        (out / "config.json").write_text(config_to_json(TrainConfig(epochs=epochs)))
        (out / "last.pt").write_bytes(b"x")
        return SimpleNamespace(returncode=0)

    runner.run_experiment(short, tmp_path / "data", tmp_path / "runs", results=tmp_path / "r.json", runner=fake)
    calls.clear()
    rows = runner.run_experiment(long, tmp_path / "data", tmp_path / "runs", results=tmp_path / "r.json", runner=fake)
    folder = runner.run_folder(tmp_path / "runs", long, "v", 0)
    resumed = [c for c in calls if "--resume" in c]
    assert len(resumed) == 1 and str(folder) in resumed[0] and resumed[0][resumed[0].index("--epochs") + 1] == "4"
    assert len(calls) == 4  # v seed 0 continued; w seed 0 (another lr) and both seed-1 runs trained afresh
    assert [json.loads(x)["epoch"] for x in (folder / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert runner.read_run(runner.run_folder(tmp_path / "runs", short, "v", 0)) is not None  # the short run kept
    assert {(r["variant"], r["seed"]): r["value"] for r in rows}[("v", 0)] == 0.46
    # copied but killed before resuming: config.json already says 4 epochs, so the run reads as unfinished
    other = tmp_path / "other"
    runner.copy_to_continue(runner.run_folder(tmp_path / "runs", short, "w", 0), other, 4)
    assert runner.read_run(other) is None and json.loads((other / "config.json").read_text())["epochs"] == 4


def test_the_sweeps_best_cells_are_the_ones_run_with_seeds():
    """relu_tanh_best runs the best cell per activation of relu_tanh_sweep as recorded in results.json: when the
    search finds another best cell, SWEEP_BEST must follow it (and the table row would say 'stale')."""
    sweep, best = runner.EXPERIMENTS["relu_tanh_sweep"], runner.EXPERIMENTS["relu_tanh_best"]
    found = runner.best_cells(sweep, runner.load_results())
    assert best.continues == sweep.name and sorted(found.values()) == sorted(best.variants)
    assert all(best.variants[v] == sweep.variants[v] for v in best.variants)
    assert "stale" not in table._search_verdict(sweep, runner.load_results())


def test_a_measurement_against_the_papers_number_is_close_no_or_not_decided():
    """Within 2 points of the paper is close; further off is "no" only when the 95% interval of the mean over seeds
    stays beyond 2 points, else not decided."""
    exp = Experiment("ref", "c", "p", "cifar10", "cifar10-jpeg", {}, {"recipe": {}}, reference=0.18)

    def judged(*values):
        rows = [dict(experiment="ref", variant="recipe", seed=s, value=v) for s, v in enumerate(values)]
        return runner.verdict(exp, runner.summarize(exp, rows), rows)

    assert judged(0.22).startswith("no: +4.0 points vs the paper's 18% (1 run(s)")
    assert judged(0.19, 0.195, 0.2).startswith("close: +1.5 ± 1.2 points")
    assert judged(0.20, 0.21, 0.25).startswith("not decided: +4.0 ± 6.6 points")  # half-width 4.30 x 2.6 / √3
    assert judged(0.215, 0.22, 0.225).startswith("no: +4.0 ± 1.2 points")


def test_no_difference_in_any_seed_is_a_no():
    """ReLU and tanh reaching 25% at the same epoch in each of 3 seeds refutes "ReLU is faster"; it is not
    "opposite" and not "not decided"."""
    exp = Experiment("eq", "c", "p", "cifar10", "cifar10-jpeg", {}, {"base": {}, "a": {}},
                     metric="epochs_to_train_err_25")
    rows = [dict(experiment="eq", variant=v, seed=s, value=6.0) for v in ("base", "a") for s in range(3)]
    assert runner.verdict(exp, runner.summarize(exp, rows), rows).startswith(
        "no (the same in every seed): a +0.0 ± 0.0 epochs")


def test_t95_is_students_t_at_any_degrees_of_freedom():
    """By hand from tables: t(0.975) = 12.706 (1 df), 4.303 (2), 2.228 (10), 2.201 (11: the old table's cliff
    gave 1.96), 2.086 (20), 1.96 (infinite); a Welch df between integers lies between them."""
    from experiments.runner import t95

    for df, want in ((1, 12.706), (2, 4.303), (10, 2.228), (11, 2.201), (20, 2.086), (math.inf, 1.960)):
        assert abs(t95(df) - want) < 1e-3, df
    assert t95(11) < t95(10.9) < t95(10)


def test_intervals_at_eleven_or_more_degrees_of_freedom_are_scipys():
    """12 seeds: the paired interval (11 df, where the old t table had fallen to the normal's 1.96) and Welch's (about
    21 df) are the ones scipy's t-tests give. By hand, paired: differences -3, -2 points alternating, mean -2.5, sd
    0.5 x sqrt(12/11) = 0.522, SE 0.151, t(11) = 2.201 -> half-width 0.332 points."""
    from pytest import approx
    from scipy.stats import ttest_ind, ttest_rel

    mine = [0.30 + 0.01 * (s % 4) + 0.002 * s for s in range(12)]
    base = [m + (0.02 if s % 2 else 0.03) for s, m in enumerate(mine)]
    d = runner.difference(dict(enumerate(mine)), dict(enumerate(base)))
    assert d.how == "paired, 12 seeds" and (d.diff, d.half) == (approx(-0.025), approx(0.003318, abs=1e-6))
    low, high = ttest_rel(mine, base).confidence_interval(0.95)
    assert (d.diff - d.half, d.diff + d.half) == (approx(low, abs=1e-12), approx(high, abs=1e-12))
    other = [0.35 + 0.013 * ((3 * s) % 5) for s in range(12)]
    w = runner.difference(dict(enumerate(mine)), dict(enumerate(other)), paired=False)
    welch = ttest_ind(mine, other, equal_var=False)
    assert welch.df > 11 and w.how == "12 vs 12 seeds"
    low, high = welch.confidence_interval(0.95)
    assert (w.diff - w.half, w.diff + w.half) == (approx(low, abs=1e-12), approx(high, abs=1e-12))
