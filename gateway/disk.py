"""Is it a full disk? SQLite and the file system say so in several ways; the gateway names a
full disk as one (never as 'set data_dir') and waits for room."""
import errno
import os
from pathlib import Path


def is_disk_full(exc: BaseException | None) -> bool:
    """Is this (or an exception it was raised while handling) a full disk? SQLite rolls a
    transaction back itself on SQLITE_FULL, so a later ROLLBACK error can hide the cause."""
    import sqlite3
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        if isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def disk_full_problem(directory: Path, exc: BaseException | None) -> str:
    """'the disk is full (…)' when `exc` is, or SQLite's vaguer 'disk I/O error' comes from, a
    full file system under `directory`; else ''. SQLite reports a full disk at open as an I/O error."""
    free = None
    d = Path(directory)
    while not d.exists() and d != d.parent:
        d = d.parent
    try:
        st = os.statvfs(d)
        free = st.f_bavail * st.f_frsize
    except OSError:
        pass
    if is_disk_full(exc) or (free is not None and free < (1 << 20)):
        return f"the disk is full ({free if free is not None else '?'} bytes free under {d})"
    return ""
