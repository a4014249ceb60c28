"""The experiments runner's bookkeeping: finished runs are reused, interrupted ones resumed, results recorded per
(variant, seed), and the RESULTS.md table generated from the results file."""
import json
from types import SimpleNamespace

from experiments import runner
from experiments.runner import Experiment

EXP = Experiment("toy", "a claim", "-1 point", "cifar10", "cifar10-jpeg", dict(epochs=2),
                 {"off": dict(model_options=dict(lrn=False)), "on": dict(model_options=dict(lrn=True))},
                 seeds=(0, 1), scale="tiny")


def _fake_training(errors, calls):
    """Stands in for ``convscope train``: writes the run folder's config and per-epoch metrics."""

    def run(cmd):
        calls.append(cmd)
        out = runner.Path(cmd[cmd.index("--out-dir") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dict(epochs=2)))
        key = (out.parent.name, int(out.name[4:]))
        (out / "metrics.jsonl").write_text("".join(
            json.dumps(dict(epoch=e, val_top1_err=errors[key] + 0.1 * (2 - e), train_err=0.5)) + "\n"
            for e in (1, 2)))
        return SimpleNamespace(returncode=0)

    return run


def test_runs_are_reused_and_resumed_and_results_recorded(tmp_path):
    errors = {("off", 0): 0.30, ("off", 1): 0.32, ("on", 0): 0.25, ("on", 1): 0.27}
    calls, results = [], tmp_path / "results.json"
    rows = runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                                 runner=_fake_training(errors, calls))
    assert len(calls) == 4 and [r["value"] for r in rows] == [0.30, 0.25, 0.32, 0.27]  # seed-major order
    assert "--model-options" in calls[0] and "lrn=False" in calls[0] and "--seed" in calls[0]
    calls.clear()
    runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                          runner=_fake_training(errors, calls))
    assert calls == []  # every run finished: nothing trains again
    # an interrupted run (checkpoint, too few epochs logged) is continued with --resume, the rest reused
    folder = runner.run_folder(tmp_path / "runs", EXP, "on", 1)
    (folder / "metrics.jsonl").write_text(json.dumps(dict(epoch=1, val_top1_err=0.4, train_err=0.5)) + "\n")
    (folder / "last.pt").write_bytes(b"x")
    runner.run_experiment(EXP, tmp_path / "data", tmp_path / "runs", results=results,
                          runner=_fake_training(errors, calls))
    assert len(calls) == 1 and calls[0][-1] == "--resume" and str(folder) in calls[0]
    saved = json.loads(results.read_text())
    assert len(saved) == 4 and {(r["variant"], r["seed"]) for r in saved} == set(errors)


def test_table_is_generated_from_the_results_file(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "EXPERIMENTS", {"toy": EXP})
    rows = [dict(experiment="toy", variant=v, seed=s, value=e) for (v, s), e in
            {("off", 0): 0.30, ("off", 1): 0.32, ("on", 0): 0.25, ("on", 1): 0.27}.items()]
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nhand-written text stays\n")
    runner.update_results_md(rows, md)
    runner.update_results_md(rows, md)  # idempotent: one table, replaced in place
    text = md.read_text()
    assert text.count(runner.TABLE_START) == 1 and "hand-written text stays" in text
    assert "off: 31.0 ± 1.4%, n=2" in text and "on: 26.0 ± 1.4%, n=2" in text
    assert "yes: on -5.0 points vs off" in text
    rows[2]["value"] = 0.40  # now "on" is worse than "off" beyond the spread in one seed... and the mean
    rows[3]["value"] = 0.41
    runner.update_results_md(rows, md)
    assert "no (opposite, beyond the spread)" in md.read_text()


def test_sweep_groups_report_their_best_variant_and_unreached_thresholds():
    exp = Experiment("sweep", "c", "p", "cifar10", "cifar10-jpeg", {}, {"a/1": {}, "a/2": {}, "b/1": {}},
                     metric="epochs_to_train_err_25", groups={"a/": "A", "b/": "B"})
    rows = [dict(experiment="sweep", variant="a/1", seed=0, value=6.0), dict(experiment="sweep", variant="a/2",
            seed=0, value=3.0), dict(experiment="sweep", variant="b/1", seed=0, value=None)]
    summary = runner.summarize(exp, rows)
    assert summary["A"][0] == "A: a/2" and summary["A"][1] == 3.0
    assert summary["B"][3] == 0 and "not reached" in runner._fmt(exp, *summary["B"][1:])
    assert runner.measure("epochs_to_train_err_25", [dict(epoch=1, train_err=0.3), dict(epoch=2, train_err=0.2)]) == 2


def test_demo_measured_rows_come_from_the_demo_files(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "DEMO", tmp_path)
    assert runner._eval_row()[0] == "not run yet"
    (tmp_path / "eval.json").write_text(json.dumps(dict(results=[
        dict(views="center", top1_err=0.2568, top5_err=0.0385)])))
    assert runner._eval_row()[0].startswith("center: 25.7% / 3.9%")
    assert "25.7%" in runner.render_table([])


def test_verdicts_follow_the_named_comparisons():
    exp = Experiment("c", "c", "p", "cifar10", "cifar10-jpeg", {}, {"base": {}, "a": {}, "ctrl": {}},
                     compare=(("a", "base"), ("a", "ctrl")))
    rows = [dict(experiment="c", variant=v, seed=s, value=x) for v, xs in
            {"base": (0.5, 0.52), "a": (0.3, 0.31), "ctrl": (0.31, 0.318)}.items() for s, x in enumerate(xs)]
    text = runner.verdict(exp, runner.summarize(exp, rows))
    assert text.startswith("yes: a -20.5 points vs base") and "partly (within the spread): a" in text


def test_second_measurement_reports_each_groups_lowest():
    exp = Experiment("sw", "c", "p", "cifar10", "cifar10-jpeg", {}, {"a/1": {}, "a/2": {}, "b/1": {}},
                     metric="epochs_to_train_err_25", groups={"a/": "A (best)", "b/": "B (best)"},
                     also="final_train_err")
    rows = [dict(experiment="sw", variant=v, seed=0, value=None, final_train_err=e)
            for v, e in (("a/1", 0.40), ("a/2", 0.30), ("b/1", 0.50))]
    text = runner._also(exp, rows)
    assert "A: lowest final train err 30.0" in text and "(a/2, n=1)" in text and "B: lowest final train err 50.0" in text
    assert runner.measure("final_train_err", [dict(train_err=0.5), dict(train_err=0.2)]) == 0.2


def test_every_variant_command_parses_back_to_its_overrides():
    """The runner writes each variant's model options on the command line; the CLI must read back the same values
    (tuples such as remove=conv3+conv4, mappings such as conv_channels=conv3:512+conv4:1024)."""
    from pathlib import Path

    from convscope.config import parse_options

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
    monkeypatch.setattr(runner, "EXPERIMENTS", {"toy": EXP, "toy_ens": ens})
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
        out = runner.Path(cmd[cmd.index("--out") + 1])
        out.write_text(json.dumps(dict(results=[dict(views="center", top1_err=0.2 if len(models) == 1 else 0.15)])))
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
    text = runner.verdict(exp, runner.summarize(exp, rows))
    assert text.startswith("yes:") and name in text and "+5.0 points" in text
    for r in rows[2:]:
        r["value"] -= 0.10
    assert runner.verdict(exp, runner.summarize(exp, rows)).startswith("no (opposite, beyond the spread)")
