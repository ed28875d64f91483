"""Where a study lives: an Optuna journal file or an RDB URL; passwords masked and scrubbed from output."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..config import ConfigError
from .journal import check_journal

__all__ = ["STORAGE_ENV", "WORKER_STORAGE_ENV", "mask_url", "password_of", "Scrubber", "open_storage"]

STORAGE_ENV = "MICMCO_STORAGE"  # the user's variable for the storage URL
WORKER_STORAGE_ENV = "MICMCO_SWEEP_STORAGE_URL"  # passes the URL to local workers (never on a command line)


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    return re.sub(r"(://[^/:@]*:)([^@/]*)(@)", r"\1***\3", url)


def password_of(url: str) -> str | None:
    """The password in the URL, None if it has none."""
    match = re.search(r"://[^/:@]*:([^@/]*)@", url)
    return match.group(1) if match and match.group(1) else None


class Scrubber:
    """Removes a secret from everything this process prints."""

    def __init__(self, secret: str | None):
        self.secret = secret

    def __call__(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, "***")
        return text


def open_storage(url: str | None, journal_path: Path, must_exist: bool = False, study_file: str = "STUDY"):
    """(An Optuna storage, its label): the journal file (default) or an RDB URL; retried on a busy fresh database.
    A journal file is checked first (:func:`.journal.check_journal`: a damaged one raises, naming the line);
    ``must_exist``: a missing journal file is an error (ConfigError) instead of a new, empty study."""
    import optuna

    if not url or "://" not in url:
        path = Path(url) if url else journal_path
        if must_exist and not path.is_file():
            raise ConfigError(
                "--storage",
                f"no journal {path}: the study has not run with this --results-dir (or its journal was not copied "
                "with its table); nothing was exported and no file was created",
            )
        check_journal(path, study_file, path.with_suffix(".tsv") if not url else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return optuna.storages.JournalStorage(backend), f"journal file {path}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:  # SQLAlchemy's default driver is psycopg2; use psycopg 3
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
    last = None
    for attempt in range(8):  # concurrent first connections race on creating the tables
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            return storage, mask_url(url)
        except Exception as error:  # noqa: BLE001 - retried, then reported
            last = error
            time.sleep(0.5 + attempt * 0.5 + (os.getpid() % 7) * 0.1)
    raise ConfigError("--storage", f"cannot open {mask_url(url)}: {type(last).__name__}: {last}")
