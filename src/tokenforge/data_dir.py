"""The data directory is private to the service user.

:func:`make_private` runs at every start (``bootstrap.build_container``), before the
database is opened:

* the data directory is created ``0700``, or made ``0700`` if it exists with looser modes;
* every file under it loses its group and other permission bits (``0644`` → ``0600``),
  every directory under it becomes ``0700`` (symbolic links are neither followed nor
  changed); whatever had to be tightened is logged once as a warning;
* a SQLite database file that does not exist yet is created empty with ``0600``, so the
  file and the ``-wal`` / ``-shm`` files SQLite creates beside it (SQLite gives them the
  database file's mode) are private whatever the process umask; an existing one (inside
  the data directory or not) is tightened like the rest.

Server processes also run with umask ``0o077`` (:func:`tokenforge.roles.configure_process`),
so files created later are private from the start. The data directory belongs to
TokenForge alone: do not point it at a directory holding other files.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from tokenforge.config import Settings

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE_MASK = 0o700  # a file keeps only its owner's bits
#: Paths named in the warning; more are counted.
_NAMED = 5


def make_private(settings: Settings) -> list[Path]:
    """Create or tighten ``settings.data_dir`` and the SQLite database as the module says;
    returns the paths whose modes were tightened (a fresh directory gives none). A path
    that cannot be changed (another owner) is logged and left as it is."""
    data_dir = settings.data_dir
    tightened: list[Path] = []
    if not data_dir.exists():
        data_dir.mkdir(parents=True, mode=DIR_MODE)
    _tighten(data_dir, tightened)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            _tighten(Path(root) / name, tightened)
    database = _sqlite_file(settings)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            if path not in tightened:
                _tighten(path, tightened)
    if tightened:
        named = ", ".join(f"{p}" for p in tightened[:_NAMED])
        more = f" and {len(tightened) - _NAMED} more" if len(tightened) > _NAMED else ""
        log.warning(
            "data directory %s was open to other users: made %d paths private to the service user "
            "(directories 0700, files 0600): %s%s",
            data_dir,
            len(tightened),
            named,
            more,
        )
    return tightened


def _sqlite_file(settings: Settings) -> Path | None:
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _tighten(path: Path, tightened: list[Path]) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    mode = stat.S_IMODE(st.st_mode)
    wanted = DIR_MODE if stat.S_ISDIR(st.st_mode) else mode & FILE_MODE_MASK
    if mode == wanted or (not stat.S_ISDIR(st.st_mode) and not mode & 0o077):
        return
    try:
        path.chmod(wanted)
    except OSError as exc:
        log.warning("cannot make %s private to the service user (mode %o): %s", path, mode, exc.strerror or exc)
        return
    tightened.append(path)
