"""No lost data (issue 23 §4, §6): a refused output is left as it was; a raw source file is
never overwritten; a full disk leaves every output valid up to its last whole line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quillrl.cli import app

runner = CliRunner()

# Last lines without a newline: what a resume would cut as "torn" before it refused the file.
NOT_OURS = {
    "notes.txt": "my notes\nline two has no newline",
    "foreign.jsonl": '{"a": 1}\n{"b": 2',
    "tasks.jsonl": '{"id": "t1", "prompt": "Write."}\n{"id": "t2", "prompt": "Write again."}',
}

TASKS = [{"id": "t1", "prompt": "Write about the sea.", "constraints": []},
         {"id": "t2", "prompt": "Write about a cat.", "constraints": []}]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", sorted(NOT_OURS))
def test_generate_refuses_a_file_that_is_not_ours_untouched(name, tmp_path, tiny_model_dir):
    out = tmp_path / name
    out.write_text(NOT_OURS[name])
    tasks = _write(tmp_path / "in.jsonl", TASKS)
    result = runner.invoke(app, ["generate", "--model", str(tiny_model_dir), "--tasks", str(tasks),
                                 "--out", str(out), "--max-new-tokens", "2"])
    assert result.exit_code == 2, result.output
    assert out.read_text() == NOT_OURS[name]


@pytest.mark.parametrize("name", sorted(NOT_OURS))
def test_winrate_judgments_refuses_a_file_that_is_not_ours_untouched(name, tmp_path):
    out = tmp_path / name
    out.write_text(NOT_OURS[name])
    tasks = _write(tmp_path / "in.jsonl", TASKS)
    resp = [{"id": t["id"], "sample": 0, "prompt": t["prompt"], "response": "words " * (i + 1),
             "model": "m", "finish_reason": "stop", "tokens": i + 1} for i, t in enumerate(TASKS)]
    a, b = _write(tmp_path / "a.jsonl", resp), _write(tmp_path / "b.jsonl", resp[::-1])
    result = runner.invoke(app, ["eval", "winrate", "--tasks", str(tasks), "--a", str(a),
                                 "--b", str(b), "--judge", "baseline:length",
                                 "--judgments", str(out)])
    assert result.exit_code == 2, result.output
    assert out.read_text() == NOT_OURS[name]


def test_our_own_torn_last_line_is_still_repaired(tmp_path):
    from quillrl.data.resumable import ResumableJsonl

    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "x"')
    with ResumableJsonl(path, settings={}) as w:
        assert set(w.records) == {"a"} and w.truncated_lines == 1
    assert path.read_text() == '{"id": "a"}\n'


def test_data_import_never_overwrites_a_raw_source_file(tmp_path):
    root = tmp_path / "data"
    (root / "ifeval").mkdir(parents=True)
    source = _write(root / "ifeval" / "input_data.jsonl", [
        {"key": 1, "prompt": "Write without commas.", "instruction_id_list": ["punctuation:no_comma"],
         "kwargs": [{}]}])
    other = root / "ifeval" / "responses.jsonl"
    other.write_text('{"prompt": "p", "response": "r"}\n')
    for out in (source, other):
        saved = out.read_bytes()
        result = runner.invoke(app, ["data", "import", "ifeval", "--data-root", str(root),
                                     "--out", str(out)])
        assert result.exit_code == 2 and "data root" in result.stderr, result.output
        assert out.read_bytes() == saved
    fresh = root / "imported.jsonl"  # a new file inside the root is fine
    ok = runner.invoke(app, ["data", "import", "ifeval", "--data-root", str(root), "--out", str(fresh)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(fresh.read_text().splitlines()[0])["prompt"] == "Write without commas."


# ---------------------------------------------------------------- a full disk (issue 23 §6)

@pytest.fixture
def small_disk(tmp_path):
    """A 16 KiB tmpfs the test mounts (root only), and a function that frees space by growing
    it; None where mounting is not permitted (the tests then simulate ENOSPC in the writer)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                              capture_output=True).returncode == 0
    except OSError:  # no mount(8)
        made = False
    if not made:
        yield None
        return
    try:
        yield mount, lambda: subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _simulate_full_disk(monkeypatch, after_bytes: int):
    """ENOSPC once ``after_bytes`` have been written through JsonlWriter (part of a line lands
    first, as on a real disk); returns a function that frees the space."""
    import errno

    from quillrl.data import jsonl

    state = {"left": after_bytes, "full": True}

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            if state["full"]:
                if state["left"] <= 0:
                    raise OSError(errno.ENOSPC, "No space left on device", str(self.fh.name))
                data = data[:state["left"]]
                state["left"] -= len(data)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    real_init = jsonl.JsonlWriter.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        self._fh = Full(self._fh)

    monkeypatch.setattr(jsonl.JsonlWriter, "__init__", init)
    return lambda: state.update(full=False)


def _valid_lines(path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "the last line is cut"
    return [json.loads(line) for line in text.splitlines()]


def test_generate_on_a_full_disk_keeps_whole_lines_and_resumes(tmp_path, tiny_model_dir, small_disk,
                                                               monkeypatch):
    tasks = _write(tmp_path / "tasks.jsonl", [{"id": f"t{i}", "prompt": f"Write story {i}."}
                                              for i in range(60)])
    if small_disk is None:  # mounting not permitted: the writer's disk fills after 6000 bytes
        out, free = tmp_path / "responses.jsonl", _simulate_full_disk(monkeypatch, 6000)
    else:
        out, free = small_disk[0] / "responses.jsonl", small_disk[1]
    args = ["generate", "--model", str(tiny_model_dir), "--tasks", str(tasks), "--out", str(out),
            "--max-new-tokens", "24", "--temperature", "1.0", "--batch-size", "16"]
    full = runner.invoke(app, args)
    assert full.exit_code == 2, full.output
    assert "No space left on device" in full.stderr and "resume" in full.stderr
    assert "Traceback" not in full.output
    kept = _valid_lines(out)
    assert 0 < len(kept) < 60
    free()
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["resumed"] == len(kept) and summary["n_responses"] == 60
    done = {r["id"]: r for r in _valid_lines(out)}
    assert all(done[r["id"]] == r for r in kept)  # what was written before is kept as it was


def test_eval_constraints_on_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, small_disk):
    if small_disk is None:
        pytest.skip("needs a tmpfs: mounting is not permitted here (the writer's ENOSPC path is "
                    "covered by the generate test's simulation)")
    disk, free = small_disk
    tasks = _write(tmp_path / "tasks.jsonl", [
        {"id": f"t{i}", "prompt": "Write.", "constraints": [
            {"id": "creative:word_range", "kwargs": {"max_words": 50}}]} for i in range(300)])
    responses = _write(tmp_path / "r.jsonl", [
        {"id": f"t{i}", "sample": 0, "prompt": "Write.", "response": "a few words " * 5,
         "model": "m", "finish_reason": "stop", "tokens": 15} for i in range(300)])
    (disk / "filler").write_bytes(b"x" * 12 * 1024)  # leaves too little for the plot
    base = ["eval", "constraints", "--tasks", str(tasks), "--responses", str(responses)]
    for extra, target in ((["--out", str(disk / "verdicts.jsonl")], disk / "verdicts.jsonl"),
                          (["--report-dir", str(disk / "report")], disk / "report" / "pass_rates.png")):
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2, result.output
        assert "No space left on device" in result.stderr and "Traceback" not in result.output
        assert not target.exists()
        assert not [p for p in disk.rglob("*") if p.name.startswith(".")]  # no temporary left
    free()
    result = runner.invoke(app, base + ["--out", str(disk / "verdicts.jsonl"),
                                        "--report-dir", str(disk / "report")])
    assert result.exit_code == 0, result.output
    assert len(_valid_lines(disk / "verdicts.jsonl")) == 300
