"""Writing files safely: atomic writes, the temp files a killed run leaves, undoing a failed run.

Every room writes through here (images, checkpoints, ONNX files, manifests, reports), so a
crash, a full disk or a kill never leaves a half-written file in place of a good one:

    atomic_write_bytes(path, data)            # temp file + fsync + rename
    with atomic_path(path) as tmp:            # for libraries that write files themselves
        im.save(tmp)

Temp files are named ``.NAME.PID-RANDOM.tmp.EXT`` beside their target: the PID says which
process writes them, so the next write of the same target (or sweep_temps over a folder)
removes those whose writer is gone (kill -9, power cut) and never one still being written.

Standard library only: the torch-free runtime and the Blender add-on use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from texgen.errors import TexgenError

__all__ = ["atomic_write_bytes", "atomic_path", "sweep_temps", "undo_on_failure",
           "write_error", "file_sha256"]

# Read once at import: temp files are created 0600, but the final file should get
# the same permissions an ordinary open() would have given it.
_UMASK = os.umask(0)
os.umask(_UMASK)

# .TARGET. + PID-RANDOM.tmp.EXT (this texgen) or RANDOM.tmp.EXT (before the PID was kept)
_TEMP_TAIL = re.compile(r"(?:(?P<pid>\d+)-)?[a-z0-9_]+\.tmp(?:\.[^./]*)?")
# a temp without a PID is swept once it is this old: surely no writer is still at it
_ORPHAN_AGE_S = 3600.0


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it is fsynced and renamed onto ``path``.

    For code that writes files itself (Pillow, onnx export). The temp name keeps the target's
    suffix, since some writers pick a format from it. A symbolic link is written through (its
    target is replaced, the link stays). On any error the temp file is removed and ``path`` is
    left untouched; OSErrors become TexgenError, other exceptions (bugs, Ctrl-C) propagate
    unchanged. Temps of the same target left by a dead process are swept first.
    """
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_temps(path.parent, path.name)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False,
                                         prefix=f".{path.name}.{os.getpid()}-",
                                         suffix=".tmp" + path.suffix) as f:
            tmp = Path(f.name)
        yield tmp
        # Flush the (possibly library-written) file to disk before it replaces
        # the old one: otherwise a power cut can leave an empty file behind.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)  # make the rename itself durable
    except OSError as e:
        raise TexgenError(write_error(path, e)) from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def file_sha256(path) -> str:
    """A file's SHA-256 (hex), read in pieces: what manifests record of every file."""
    import hashlib
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":          # os.kill(pid, 0) would terminate it on Windows
        return True                 # (so on Windows only PID-less orphans are swept, by age)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                 # EPERM: someone else's live process
        return True
    return True


def sweep_temps(folder, target: str | None = None, exclusive: bool = False) -> list[Path]:
    """Remove the temp files in ``folder`` (of ``target`` only, when given) whose writer is no
    longer running: what a killed run left. A temp without a PID (older texgen) counts as
    left once it is an hour old, at once when the folder is ``exclusive`` to the caller (a
    texture set's folder). Returns what it removed; never raises."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        m = _temp_match(e.name, target)
        if not m:
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            dead = (not _alive(int(m["pid"])) if m["pid"]
                    else exclusive or now - e.stat(follow_symlinks=False).st_mtime > _ORPHAN_AGE_S)
            if dead:
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            continue
    return removed


def _temp_match(name: str, target: str | None):
    """The match of a temp file's name (of `target`, or of any target), else None."""
    if not name.startswith("."):
        return None
    if target is not None:
        head = f".{target}."
        return _TEMP_TAIL.fullmatch(name, len(head)) if name.startswith(head) else None
    for at in (i for i, c in enumerate(name) if c == "." and i > 1):
        m = _TEMP_TAIL.fullmatch(name, at + 1)
        if m:
            return m
    return None


@contextlib.contextmanager
def undo_on_failure(folder, keep: Callable[[], bool] = lambda: False):
    """Run a block that writes into ``folder``; if it raises (an error, Ctrl-C), remove the
    files it added there, and ``folder`` itself if the block created it, unless keep() says
    what was written is worth keeping (a checkpoint to resume). Files that were there before
    are never touched; sub-folders the block made are removed only when empty."""
    folder = Path(folder)
    existed = folder.exists()
    before = set(os.listdir(folder)) if folder.is_dir() else set()
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            if folder.is_dir() and not keep():
                for name in set(os.listdir(folder)) - before:
                    p = folder / name
                    with contextlib.suppress(OSError):
                        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
                if not existed:
                    folder.rmdir()
        raise


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. Windows); best effort
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_error(path, e: OSError) -> str:
    """One line for a failed write: disk full, permission denied or the system's words."""
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"disk full writing {path}"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied writing {path}" + (" (read-only file system)"
                                                      if e.errno == errno.EROFS else "")
    return f"cannot write {path}: {e.strerror or e}"
