"""The static report: builds from partial runs, says what is missing, escapes data, embeds JSON safely."""
import json
import re
import threading
import urllib.request

import pytest
from PIL import Image

from convscope.cli import main
from convscope.report import build_report
from convscope.report.charts import Series, line_chart
from convscope.report.site import json_for_script
from tests.helpers import EVIL, EVIL2, evil_outputs, report_sections, training_outputs


def test_training_only_run_builds_and_says_what_is_missing(tmp_path):
    run = training_outputs(tmp_path / "run")
    index = build_report(run)
    assert index == run / "report" / "index.html"
    html = index.read_text()
    sections = report_sections(html)
    assert sections["overview"] == sections["curves"] == sections["config"] == "section"
    missing = {"evaluation", "predictions", "filters", "atlas", "evolution", "occlusion", "sanity", "invariance",
               "correspondence", "transfer", "retrieval"}
    assert {k for k, v in sections.items() if v.endswith("missing")} == missing
    for command in ("convscope evaluate", "convscope predict", "convscope inspect", "convscope occlusion",
                    "convscope invariance", "convscope correspondence", "convscope transfer", "convscope retrieval"):
        assert command in html, command
    assert f"--out {run}/inspect" in html  # the command names this run's folders
    assert html.count("<svg") == 3 and "65.00%" in html  # loss, error, lr; best val top-1 = 0.85 - 0.2
    assert "Could not read" not in html
    assert (run / "report" / "static" / "report.js").is_file()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing from the network


def test_empty_folder_is_a_user_error_and_report_command_prints_the_path(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "none of the files a report is built from" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope")]) == 2
    run = training_outputs(tmp_path / "run")
    assert main(["report", str(run), "--out", str(tmp_path / "site")]) == 0
    assert str(tmp_path / "site" / "index.html") in capsys.readouterr().out


def test_names_from_data_are_escaped_and_json_cannot_break_out(tmp_path):
    run = evil_outputs(tmp_path / "run")
    html = build_report(run).read_text()
    assert EVIL not in html and "<img src=x" not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    # the explorer's JSON: exactly one closing tag per script element, and it parses back to the original names
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in blob and ">" not in blob
    data = json.loads(blob)
    assert data["atlas"]["layers"][0]["maps"][0]["tiles"][0]["cls"] == EVIL2
    assert html.count("<script") == 2 == html.count("</script>")
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):  # copied files got URL-safe names
        if not url.startswith(("#", "file:")):
            assert re.fullmatch(r"[A-Za-z0-9_./-]+", url), url
            assert (run / "report" / url).is_file(), url


def test_json_for_script_round_trips():
    value = {"a": "</script><!-- \u2028 & >", "b": [1.5, None]}
    text = json_for_script(value)
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    assert json.loads(text) == value


def test_line_chart_is_escaped_and_handles_gaps():
    svg = line_chart([Series(EVIL, [(1, 0.5), (2, None), (3, float("nan")), (4, 0.25)])], title=EVIL)
    assert EVIL not in svg and "&lt;script&gt;" in svg
    assert svg.count("<circle") == 2
    assert "no data" in line_chart([Series("x", [])], title="t")
    assert line_chart([Series("lr", [(1, 0.01), (2, 0.01)])], title="lr", log_y=True).count("<circle") == 2


def test_serve_binds_localhost_only(tmp_path):
    from convscope.commands.serve import make_server

    run = training_outputs(tmp_path / "run")
    index = build_report(run)
    server = make_server(index.parent, 0)
    try:
        host, port = server.server_address
        assert host == "127.0.0.1"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as r:
            assert b"Training curves" in r.read()
    finally:
        server.shutdown()
        server.server_close()


def test_report_never_deletes_a_folder_it_did_not_write(tmp_path, capsys):
    run = training_outputs(tmp_path / "run")
    mine = tmp_path / "my-folder"
    (mine / "img").mkdir(parents=True)
    (mine / "img" / "holiday.jpg").write_bytes(b"precious")
    (mine / "static").mkdir()
    (mine / "static" / "notes.txt").write_text("also precious")
    assert main(["report", str(run), "--out", str(mine)]) == 2
    assert "no convscope report wrote" in capsys.readouterr().err
    assert (mine / "img" / "holiday.jpg").read_bytes() == b"precious" and (mine / "static" / "notes.txt").is_file()
    site = tmp_path / "site"
    assert main(["report", str(run), "--out", str(site)]) == 0  # a new folder, then rebuilt in place
    (site / "img" / "stale.png").parent.mkdir(parents=True, exist_ok=True)
    (site / "img" / "stale.png").write_bytes(b"old")
    assert main(["report", str(run), "--out", str(site)]) == 0
    assert not (site / "img" / "stale.png").exists() and (site / "index.html").is_file()


def test_malformed_section_file_is_reported_in_its_section(tmp_path):
    run = training_outputs(tmp_path / "run")
    (run / "eval.json").write_text("{not json")
    problems = []
    html = build_report(run, problems=problems).read_text()
    assert report_sections(html)["evaluation"] == "section missing"
    assert "cannot be used" in html and "eval.json: is not valid JSON" in html and report_sections(html)["curves"] == "section"
    assert len(problems) == 1 and "convscope evaluate" in problems[0]


def test_a_renamed_key_names_the_file_and_the_field(tmp_path, capsys):
    """What a renamed key used to do silently (a section turning into a vague note), it now says out loud."""
    from convscope.runfolder import write_record
    from convscope.runfolder.records import EvalRecord, EvalRow

    run = training_outputs(tmp_path / "run")
    write_record(run / "eval.json", EvalRecord(checkpoints=["x.pt"], data_root="d", split="val", results=[
        EvalRow(views="center", models=1, top1_err=0.3, top5_err=0.05, loss=1.0, count=10)]))
    assert main(["report", str(run)]) == 0 and "30.00%" in (run / "report" / "index.html").read_text()
    saved = json.loads((run / "eval.json").read_text())
    saved["result"] = saved.pop("results")  # a writer renamed its key
    (run / "eval.json").write_text(json.dumps(saved))
    assert main(["report", str(run)]) == 1
    err = capsys.readouterr().err
    assert "eval.json: field 'results' is missing" in err and "convscope evaluate" in err
    html = (run / "report" / "index.html").read_text()
    assert "field &#x27;results&#x27; is missing" in html
    saved["format"] = 99  # from another version of convscope
    (run / "eval.json").write_text(json.dumps(saved))
    assert main(["report", str(run)]) == 1 and "field 'format' is 99" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["report", "serve"])
def test_commands_are_registered(name, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    assert "RUN_DIR" in capsys.readouterr().out


def test_save_png_is_atomic(tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous PNG whole and no temp file (a killed analysis)."""
    from convscope.report.images import save_png

    target = tmp_path / "fig.png"
    save_png(Image.new("RGB", (8, 8), (255, 0, 0)), target)

    def torn(self, f, *args, **kwargs):
        f.write(b"\x89PNG half")
        raise KeyboardInterrupt  # the kill

    monkeypatch.setattr(Image.Image, "save", torn)
    with pytest.raises(KeyboardInterrupt):
        save_png(Image.new("RGB", (8, 8), (0, 0, 255)), target)
    monkeypatch.undo()
    assert Image.open(target).getpixel((0, 0)) == (255, 0, 0) and [p.name for p in tmp_path.iterdir()] == ["fig.png"]
