"""Every command answers out-of-range values and wrong paths with one line on stderr, exit != 0, no traceback."""
import json


from convscope.cli import main

CK = "--checkpoint"


def _cases(tmp):
    img, ck, data = str(tmp / "missing.jpg"), str(tmp / "missing.pt"), str(tmp)
    bad_config = tmp / "badrun"
    bad_config.mkdir(exist_ok=True)
    (bad_config / "config.json").write_text("{not json")
    train = ["train", "--recipe", "imagenette", "--data-root", data, "--out-dir", str(tmp / "run")]
    return [
        train + ["--batch-size", "0"], train + ["--lr", "-1"], train + ["--image-size", "0"],
        train + ["--crop", "999"], train + ["--epochs", "0"], train + ["--momentum", "1.5"],
        train + ["--workers", "-1"], train + ["--precision", "fp8"], train + ["--batch-size", "x"],
        train + ["--model-options", "width"], train + ["--model", "vgg"], ["train", "--resume"],
        ["train", "--out-dir", str(tmp / "nothing"), "--resume"], ["train", "--recipe", "nope"],
        ["evaluate", ck, "--data-root", data, "--batch-size", "0"], ["evaluate", ck, "--data-root", data],
        ["evaluate", ck, "--data-root", data, "--subset", "-1"],
        ["predict", img, CK, ck, "--top", "-1"], ["predict", img, CK, ck, "--top", "0"], ["predict", img, CK, ck],
        ["inspect", CK, ck, "--data", data, "-k", "0"], ["inspect", CK, ck, "--data", data, "--maps", "0"],
        ["inspect", CK, ck, "--data", data, "--max-images", "-1"], ["inspect", CK, ck, "--data", data],
        ["occlusion", img, CK, ck, "--chunk", "0"], ["occlusion", img, CK, ck, "--patch", "0"],
        ["occlusion", img, CK, ck, "--stride", "0"], ["occlusion", img, CK, ck],
        ["invariance", img, CK, ck], ["correspondence", img, CK, ck, "--draws", "0"],
        ["transfer", CK, ck, "--data", data, "--splits", "0"], ["transfer", CK, ck, "--data", data,
                                                                  "--n-per-class", "0"],
        ["transfer", CK, ck, "--data", data, "--probe-steps", "0"], ["retrieval", CK, ck, "--data", data, "--k", "0"],
        ["retrieval", CK, ck, "--data", data, "--show", "0"], ["stats", str(tmp / "nope")],
        ["stats", data, "--image-size", "0"], ["report", str(tmp / "nope")], ["report", str(bad_config)],
        ["serve", str(tmp / "nope")], ["demo", "--epochs", "-1"], ["nosuchcommand"],
    ]


def test_every_command_rejects_bad_input_in_one_line(tmp_path, capsys):
    for argv in _cases(tmp_path):
        try:
            rc = main(argv)
        except SystemExit as exit_:  # argparse's own exit (our one-line parser error)
            rc = exit_.code
        err = capsys.readouterr().err.strip()
        assert rc not in (0, None), argv
        assert "Traceback" not in err and err.count("\n") == 0 and "error" in err, (argv, err)


def test_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys, image_tree):
    import errno

    import convscope.util.atomic as ck

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ck, "atomic_write", full)
    rc = main(["train", "--recipe", "cifar10", "--data-root", str(image_tree), "--out-dir", str(tmp_path / "run"),
               "--model-options", "width=0.25,input_size=32", "--image-size", "36", "--crop", "32", "--epochs", "1",
               "--workers", "0", "--batch-size", "8"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "no space left" in err and err.count("\n") == 0, err
    assert not json.dumps(err).count("Traceback")
