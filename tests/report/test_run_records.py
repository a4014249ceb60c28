"""The run folder's typed records on a real run: what the writers write reads back as the same record, every
nested field of every record is checked (a renamed, deleted or retyped field names the file and the field in the
report, which still renders the other sections and exits non-zero, no traceback), and an ImageNet-layout run's
true classes come from its own record of the class folders."""
import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest

from convscope.cli import main
from convscope.report import build_report
from convscope.report.sections import SECTIONS
from convscope.runfolder import read_metrics, read_record, to_json
from convscope.runfolder.codec import FieldError, decode, hints, is_optional, json_name
from tests.helpers import WNIDS, WORDS, copy_run, report_sections

SOURCES = list(dict.fromkeys(s.source for s in SECTIONS if s.source))
WRONG = ("text", 12345, [], True)  # a retyped value: the first of these the field's type refuses


def _files(run: Path):
    """(source, file) for every record file of the run (the first of a glob)."""
    for source in SOURCES:
        files = sorted(run.glob(source.path))
        assert files, f"the real run has no {source.path}"
        yield source, files[0]


def _walk(tp, value, keys, field):
    """(keys to the object holding the field, its JSON name, its dataclass field, its type, the codec's path)."""
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        if value is None:
            return
        options = [o for o in typing.get_args(tp) if o is not type(None)]
        tp = next((o for o in options if dataclasses.is_dataclass(o) or typing.get_origin(o)), options[0])
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        for f in dataclasses.fields(tp):
            name, path = json_name(f), f"{field}.{json_name(f)}" if field else json_name(f)
            if name in value:
                yield keys, name, f, hints(tp)[f.name], path
                yield from _walk(hints(tp)[f.name], value[name], keys + [name], path)
    elif typing.get_origin(tp) is list and isinstance(value, list):
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            yield from _walk(item, v, keys + [i], f"{field}[{i}]")
    elif typing.get_origin(tp) is dict and isinstance(value, dict):
        item = typing.get_args(tp)[1]
        for k, v in value.items():
            yield from _walk(item, v, keys + [k], f"{field}[{k!r}]")


def _mutations(source, data):
    """Every field once (the first element of each list, the first entry of each dict that has it): renamed,
    deleted (unless optional) and retyped. Yields (description, mutate(data) -> expected field path)."""
    seen = set()
    for keys, name, f, tp, path in _walk(source.record, data, [], ""):
        shape = re.sub(r"\[[^\]]*\]", "[]", path)
        if shape in seen:
            continue
        seen.add(shape)

        def holder(d, keys=keys):
            for k in keys:
                d = d[k]
            return d

        def rename(d, name=name, path=path, f=f, holder=holder):
            h = holder(d)
            h[name + "_renamed"] = h.pop(name)
            return path + "_renamed" if is_optional(f) else path

        def delete(d, name=name, path=path, holder=holder):
            del holder(d)[name]
            return path

        def retype(d, name=name, path=path, tp=tp, holder=holder):
            holder(d)[name] = next(w for w in WRONG if not _fits(tp, w))
            return path

        yield f"{path} renamed", rename
        if not is_optional(f):
            yield f"{path} deleted", delete
        yield f"{path} retyped", retype


def _fits(tp, value) -> bool:
    try:
        decode(tp, value)
        return True
    except FieldError:
        return False


def _load(path: Path, lines: bool):
    text = path.read_text()
    return [json.loads(x) for x in text.splitlines()] if lines else json.loads(text)


def _dump(path: Path, data, lines: bool) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in data) if lines else json.dumps(data))


def test_what_the_writers_wrote_reads_back_as_the_same_record(real_run):
    for source, path in _files(real_run):
        if source.lines:
            assert "".join(to_json(r, indent=None) for r in read_metrics(path)) == path.read_text()
        elif hasattr(source.record, "KIND"):
            assert to_json(read_record(source.record, path)) == path.read_text(), path
        else:  # config.json: TrainConfig, as train writes it
            assert json.loads(to_json(read_record(source.record, path, source.command))) == json.loads(
                path.read_text())


@pytest.mark.parametrize("images", ["not copied", pytest.param("copied", marks=pytest.mark.slow)])
def test_every_nested_field_of_every_record_is_named_when_wrong(real_run, tmp_path, capsys, monkeypatch, images):
    """720 reports of the real run, each with one field of one file wrong (the first of each file through the
    command, the others through build_report). By default the report's image copies and thumbnails are skipped
    (the same pages otherwise, 4x faster); the slow variant makes them too."""
    if images == "not copied":
        import convscope.report.sections as sections
        from convscope.report.site import Site

        monkeypatch.setattr(Site, "copy", lambda self, src, folder, command: (f"img/{folder}/{src.name}", (8, 8)))
        monkeypatch.setattr(sections, "thumbnail", lambda *args, **kw: False)
    run = copy_run(real_run, tmp_path / "run")
    site = tmp_path / "site"
    assert main(["report", str(run), "--out", str(site)]) == 0
    assert set(report_sections((site / "index.html").read_text()).values()) == {"section"}  # all present
    capsys.readouterr()
    checked = 0
    for source, path in _files(run):
        original = path.read_text()
        mine = {s.id for s in SECTIONS if s.source == source}
        for n, (what, mutate) in enumerate(_mutations(source, _load(path, source.lines)[0] if source.lines else
                                                     _load(path, False))):
            data = _load(path, source.lines)
            field = mutate(data[0] if source.lines else data)
            _dump(path, data, source.lines)
            if n == 0:  # the command: exit status and its one line per bad file
                rc = main(["report", str(run), "--out", str(site)])
                err = capsys.readouterr().err
                assert rc == 1 and "Traceback" not in err, (what, err)
                lines = err.strip().splitlines()
                assert all(line.startswith("convscope report: error: ") for line in lines), lines
            else:  # the same build in-process (the exit status is 1 exactly when there are problems)
                lines = []
                build_report(run, site, problems=lines)
            path.write_text(original)
            assert len(lines) == 1, (what, lines)
            name = path.name + (":1" if source.lines else "")
            assert name in lines[0] and f"field '{field}'" in lines[0], (what, lines[0])
            assert "written by convscope" in lines[0] or source.record.__name__ in ("TrainConfig", "MetricsRow")
            assert f"re-run `{source.command.split()[0]} {source.command.split()[1]}" in lines[0], lines[0]
            sections = report_sections((site / "index.html").read_text())
            assert {k for k, v in sections.items() if v != "section"} == mine, what
            checked += 1
    assert checked > 300  # every record, every field (a schema walk: new fields are covered as they are added)


def test_a_renderer_bug_is_a_traceback_not_the_users_file(real_run, tmp_path, monkeypatch):
    import convscope.report.sections as sections

    def broken(site, record):
        raise ValueError("a bug in the renderer")

    spec = next(s for s in sections.SECTIONS if s.id == "evaluation")
    monkeypatch.setattr(sections, "SECTIONS", tuple(dataclasses.replace(s, render=broken) if s is spec else s
                                                   for s in sections.SECTIONS))
    with pytest.raises(ValueError, match="a bug in the renderer"):
        build_report(copy_run(real_run, tmp_path / "run"))


def test_an_imagenet_layout_run_names_its_true_classes_by_folder(real_run):
    """The images' folders are wnids that only the run's own record knows (not Imagenette's): occlusion measures
    p(folder class), not p(predicted class), and invariance finds the true classes without --target."""
    from convscope.runfolder.records import InvarianceRecord, OcclusionRecord
    from convscope.loading.runs import load_run

    assert load_run(real_run).wnids == list(WNIDS) and load_run(real_run).classes == [w.split(",")[0] for w in WORDS]
    records = [read_record(OcclusionRecord, f) for f in sorted((real_run / "occlusion").glob("*.json"))]
    assert [(Path(r.image).parent.name, r.target, r.target_name) for r in records] == [
        (WNIDS[0], 0, WORDS[0]), (WNIDS[1], 1, WORDS[1])]
    invariance = read_record(InvarianceRecord, real_run / "invariance" / "invariance.json")
    assert invariance.targets == [0, 1] and invariance.target_names == list(WORDS[:2])
