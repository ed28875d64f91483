"""A study's journal damaged, missing or cut short: refused before anything is written, the table never shrinks,
and ``micmco sweep --repair-journal`` then a rerun give the table back without training (issue 30)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from test_sweep import REPO, read_rows, study_text, sweep_command, write_study

from micmco.study import load_study
from micmco.sweep.journal import DamagedJournal, check_journal, find_damage

pytestmark = pytest.mark.xdist_group("journal")  # one finished study for all of them

LINES = ['{"op_code":0,"worker_id":"w","study_name":"s"}\n', '{"op_code":4,"worker_id":"w","trial_id":0}\n']


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("".join(LINES), None, ""),
        ("".join(LINES) + '{"op_code":6,"trial', 3, "cut short"),
        (LINES[0] + "<<<<<<< HEAD\n" + LINES[1] + "=======\n>>>>>>> b\n", 2, "git conflict marker"),
        (LINES[0] + "{not json\n" + LINES[1], 2, "not a JSON operation"),
        (LINES[0] + '["a list"]\n', 2, "no op_code"),
    ],
)
def test_find_damage_names_the_first_damaged_line(tmp_path, text, line, words):
    path = tmp_path / "s.journal"
    path.write_text(text)
    damage = find_damage(path)
    if line is None:
        assert damage is None
        check_journal(path)
        return
    assert damage.line == line and words in damage.reason
    assert path.read_bytes()[: damage.intact_bytes].count(b"\n") == damage.intact_lines == line - 1
    with pytest.raises(DamagedJournal, match=rf"{path}.*line {line}.*--repair-journal"):
        check_journal(path, settle=0.1)


def test_a_last_line_still_being_appended_is_not_damage(tmp_path):
    """Another worker's append in flight shows a line without its end for an instant: read again, not refused."""
    path = tmp_path / "s.journal"
    path.write_text(LINES[0] + LINES[1][:10])
    finisher = threading.Timer(0.2, lambda: path.write_text(LINES[0] + LINES[1]))
    finisher.start()
    try:
        check_journal(path, settle=2.0)
    finally:
        finisher.join()


def _run(command, expect: int) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == expect, done.stdout + done.stderr
    return done


def _records(tmp: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in (tmp / "runs").rglob("result.json")}


def _without_trial(rows):
    return sorted((tuple(v for k, v in row.items() if k != "trial") for row in rows))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished three-trial study (one grid point): its study file, results and run directories."""
    tmp = tmp_path_factory.mktemp("finished")
    grid = "grid:\n  - {learning_rate: 0.003, lam: 0.5}"
    study = write_study(tmp / "s.yaml", study_text("jr", 3, 20, grid=grid))
    _run(sweep_command(study, tmp), 0)
    return tmp, study


def _copy(finished, tmp: Path) -> tuple[Path, Path, Path]:
    source, study = finished
    for name in ("results", "runs"):
        shutil.copytree(source / name, tmp / name)
    table, journal = tmp / "results" / "smoke" / "jr.tsv", tmp / "results" / "smoke" / "jr.journal"
    return study, table, journal


def _sweep(study_file: Path, tmp: Path, storage=None, **kwargs):
    from micmco.sweep.optuna_study import Sweep

    return Sweep(load_study(study_file), storage, tmp / "results", tmp / "runs", echo=lambda line: None, **kwargs)


def _repair(study_file: Path, tmp: Path) -> list[str]:
    from micmco.sweep.repair import repair

    lines: list[str] = []
    repair(load_study(study_file), None, tmp / "results", tmp / "runs", str(study_file), lines.append)
    return lines


@pytest.mark.parametrize("damage", ["cut", "conflict"])
def test_a_damaged_journal_is_refused_then_repaired_without_losing_a_row(finished, tmp_path, damage):
    """On the command line for a journal cut short (a crash, a copy), in Python for a merge's conflict markers."""
    study, table, journal = _copy(finished, tmp_path)
    rows, text = read_rows(table), table.read_bytes()
    data = journal.read_bytes()
    if damage == "cut":  # the last trial's end and more
        journal.write_bytes(data[: data.index(b"\n", len(data) * 6 // 10) - 4])
    else:
        lines = data.decode().splitlines(keepends=True)
        half = len(lines) // 2
        journal.write_text("".join(lines[:half] + ["<<<<<<< HEAD\n"] + lines[half:] + ["=======\n", ">>>>>>> b\n"]))
    damaged, damage_found = journal.read_bytes(), find_damage(journal)
    if damage == "cut":
        for extra in (["--export"], []):
            refused = _run(sweep_command(study, tmp_path, *extra), 2)
            assert f"{journal} is damaged at line {damage_found.line}" in refused.stderr
            assert "--repair-journal" in refused.stderr and "Traceback" not in refused.stderr
        assert "".join(_run(sweep_command(study, tmp_path, "--repair-journal"), 0).stdout).count("saved as") == 1
    else:
        with pytest.raises(DamagedJournal, match="git conflict marker"):
            _sweep(study, tmp_path)
        assert any("saved as" in line for line in _repair(study, tmp_path))
    assert table.read_bytes() == text  # nothing shrunk
    saved = list(journal.parent.glob("jr.journal.damaged-*"))
    assert len(saved) == 1 and saved[0].read_bytes() == damaged
    assert find_damage(journal) is None and journal.read_bytes().startswith(damaged[: damage_found.intact_bytes])
    if damage == "cut":
        pending = _run(sweep_command(study, tmp_path, "--export"), 0)
        assert "left as it is" in pending.stdout and table.read_bytes() == text  # rows to be recorded again first
    records = _records(tmp_path)
    summary = _run(sweep_command(study, tmp_path), 0).stdout.splitlines()
    assert _records(tmp_path) == records  # recorded from the finished run directories, not trained again
    assert any("m = 0.5 ln V   m = 0.8 ln V  m = 0.95 ln V" in line for line in summary)  # as micmco pareto
    assert _without_trial(read_rows(table)) == _without_trial(rows)


def test_no_journal_or_one_without_rows_of_the_table_is_refused_and_the_table_rebuilt(finished, tmp_path):
    """A journal cut at a line end reads as a shorter study; a missing one as none: neither may shrink the table
    (export or run), and the repair rebuilds the study from the table, grid point in its slot."""
    from micmco.sweep.rows import TableRowsMissing

    study, table, journal = _copy(finished, tmp_path)
    rows, text = read_rows(table), table.read_bytes()
    data = journal.read_bytes()
    journal.write_bytes(data[: data.index(b"\n", len(data) * 6 // 10) + 1])
    with pytest.raises(TableRowsMissing, match=f"lacks 1 finished rows of its table {table}"):
        _sweep(study, tmp_path).export()
    journal.unlink()
    for extra in (["--export"], []):
        refused = _run(sweep_command(study, tmp_path, *extra), 2)
        assert str(journal) in refused.stderr and "Traceback" not in refused.stderr
        assert not journal.exists() and table.read_bytes() == text
    with pytest.raises(TableRowsMissing, match="holds no study yet"):
        _sweep(study, tmp_path, str(tmp_path / "other.journal"))
    assert not (tmp_path / "other.journal").exists()
    one = tmp_path / "runs" / "jr" / rows[1]["run"]
    one.rename(one.with_name("elsewhere"))  # a clone without that run directory: its row would be trained again
    lines = _repair(study, tmp_path)
    one.with_name("elsewhere").rename(one)
    assert any("enqueued again 3 rows" in line for line in lines)
    assert any(f"1 of them have no finished run directory under {one.parent}" in line for line in lines), lines
    assert sum(t.user_attrs.get("slot") == "grid:0" for t in _sweep(study, tmp_path).trials()) == 1
    records = _records(tmp_path)
    _run(sweep_command(study, tmp_path), 0)
    assert _records(tmp_path) == records
    rebuilt = read_rows(table)
    assert _without_trial(rebuilt) == _without_trial(rows)
    assert len({row["trial"] for row in rebuilt}) == len(rows)
