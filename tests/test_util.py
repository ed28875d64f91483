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
