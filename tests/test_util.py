"""micmco.util: what the commands share (signals around the heavy imports)."""

import signal


def test_a_signal_during_the_heavy_imports_is_deferred_not_swallowed(tmp_path, monkeypatch):
    from micmco.util import import_deferring_signals

    # A package probing an optional dependency catches what an interrupted import raises (torch and
    # Optuna do: Ctrl-C 0.7 s into importing them was lost, and a sweep started anyway).
    (tmp_path / "probing_package.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.2)\n"
        "except BaseException:\n"
        "    pass\n"
    )
    (tmp_path / "quiet_package.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = signal.getsignal(signal.SIGINT)
    assert import_deferring_signals(["quiet_package"]) is False
    assert import_deferring_signals(["probing_package"]) is True  # the caller stops: exit 130
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are back


def test_the_recorded_commit_is_dirty_for_changed_source_only_not_for_results_a_sweep_rewrites(tmp_path):
    """A sweep rewrites its committed journal and table while it runs: every row it wrote read
    '<commit>-dirty' although its code was the commit's. Only the package's own files count."""
    import importlib.util
    import shutil
    import subprocess

    from micmco import util

    def git(*argv):
        subprocess.run(["git", *argv], cwd=tmp_path, check=True, capture_output=True)

    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    shutil.copy(util.__file__, package / "util.py")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "study.journal").write_text("trial 0\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    spec = importlib.util.spec_from_file_location("copied_util", package / "util.py")
    copied = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copied)
    clean = copied.git_commit()
    assert clean and len(clean) == 40
    (tmp_path / "results" / "study.journal").write_text("trial 0\ntrial 1\n")  # the sweep's own output
    assert copied.git_commit() == clean
    (package / "util.py").write_text((package / "util.py").read_text() + "\n# an edit\n")
    assert copied.git_commit() == clean + "-dirty"
