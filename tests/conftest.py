import os
import signal
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED = REPO.parent / "shared"  # the project's shared data, beside the checkout

# The test models are tiny: one thread is faster than two, and leaves a core for subprocess tests.
torch.set_num_threads(1)

# A suite started in the background of a script (`cmd &`, nohup) begins with SIGINT ignored, and every
# subprocess inherits that: the tests of Ctrl-C would then see it swallowed. Catching it here (Python's
# own handler) resets it to the default in the children, as in a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def shared_dir() -> Path:
    """../shared: always present under CI (CI=true); a user's clone may lack it."""
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing, but CI always provides it")
        pytest.skip(f"needs the project's shared data at {SHARED}, which this checkout does not have")
    return SHARED


def pytest_collection_modifyitems(config, items):
    """Tests that need the built book (it executes every chapter, minutes) are marked ``book``, so that
    ``make test-fast`` (``-m "not slow and not book"``) leaves them out; and they run in one xdist group, so
    that ``make test``'s two test processes (``-n 2 --dist loadgroup``) build the book once, not twice."""
    for item in items:
        if "built_book" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.book)
            item.add_marker(pytest.mark.xdist_group("book"))
