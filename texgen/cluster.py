"""Independent jobs, run in this process, in a pool of local processes, or on a Ray cluster.

    jobs = [Job("wall_0007", paint_set, (model, 7, ...), key=settings), ...]
    ran, skipped = run_jobs(jobs, out / JOBS_FILE, Where(ray="127.0.0.1:6379"), progress)

The one home of "spread these over workers" (export-set's sets, a UDIM set's tiles,
train-many's models). A job is a module-level function of its arguments alone (so any process
on any machine computes the same bytes) that writes its files atomically (texgen/files.py) and
returns their paths; the process that ran it hashes them, so the driver never reads the data.

A manifest (JSON, in the output folder) records each finished job: its key (the settings that
decide its files) and every file's size and SHA-256. It is rewritten atomically as jobs
finish (at most every MANIFEST_EVERY_S seconds, and at the end), so a rerun, after a crash, a
kill or Ctrl-C, skips the jobs whose files are all still there with those checksums and the
same key, and runs the rest. Nothing in it is executed or unpickled.

Ray is imported only when asked for (the `cluster` extra). A job runs as a Ray task with
max_retries=3 and retry_exceptions=False: a worker that dies (killed, out of memory, its node
lost) has its task run again elsewhere, while an error of the job itself (bad input, a full
disk) is reported once, as the one-line error it is. Jobs that ask for a GPU get one where the
cluster has GPUs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import socket
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from texgen.errors import TexgenError
from texgen.files import atomic_write_bytes, file_sha256

__all__ = ["Job", "Where", "run_jobs", "JOBS_FILE", "RAY_MISSING"]

JOBS_FILE = "jobs.json"          # the manifest's usual name in an output folder
JOBS_FORMAT = 1
MANIFEST_EVERY_S = 2.0           # 10,000 jobs must not mean 10,000 rewrites of a large file
RAY_MISSING = "--ray needs Ray: pip install 'texgen[cluster]'"
RAY_RETRIES = 3                  # a killed worker's task runs again, up to this many times

Progress = Callable[[float, int], None]


@dataclass(frozen=True)
class Job:
    """One unit of work. fn(*args, tick=None, cancel=None) -> the paths it wrote; tick(done,
    total) reports its own progress, cancel() asks it to stop (both only when it runs in this
    process; elsewhere they are None). key: JSON-able settings that decide its files. units:
    its weight in the progress count. gpu: wants a GPU where the cluster has one. cleanup: run
    here for a job that did not finish when the run stops (e.g. remove an empty folder)."""
    id: str
    fn: Callable[..., list]
    args: tuple
    key: Any = None
    units: int = 1
    gpu: bool = False
    cleanup: Callable[[], None] | None = None


@dataclass(frozen=True)
class Where:
    """Where jobs run: ray, a Ray address ("auto": RAY_ADDRESS, else the cluster this machine
    last started, else a new local one), else `workers` local processes (1: this process)."""
    workers: int = 1
    ray: str | None = None


# --------------------------------------------------------------------------- the manifest

class Manifest:
    """job id -> {"key": ..., "files": {path: {"bytes", "sha256"}}}; paths relative to the
    manifest's folder when inside it."""

    def __init__(self, path):
        self.path = Path(path)
        self.jobs: dict = {}
        self._dirty, self._saved_at = False, 0.0
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):               # none yet, or damaged: redo everything
            return
        if isinstance(data, dict) and data.get("texgen_jobs") == JOBS_FORMAT \
                and isinstance(data.get("jobs"), dict):
            self.jobs = data["jobs"]

    def _abs(self, name: str) -> Path:
        return self.path.parent / name

    def finished(self, job: Job) -> bool:
        """Recorded with the same key, and every file still there with its size and SHA-256."""
        entry = self.jobs.get(job.id)
        if not isinstance(entry, dict) or entry.get("key") != _jsonable(job.key):
            return False
        files = entry.get("files")
        if not isinstance(files, dict) or not files:
            return False
        try:
            return all(self._abs(n).stat().st_size == f["bytes"]
                       and file_sha256(self._abs(n)) == f["sha256"] for n, f in files.items())
        except (OSError, KeyError, TypeError):
            return False

    def record(self, job: Job, files: list) -> None:
        folder = self.path.parent.resolve()
        entry = {}
        for path, size, sha in files:
            p = Path(path).resolve()
            name = p.relative_to(folder).as_posix() if p.is_relative_to(folder) else str(p)
            entry[name] = {"bytes": size, "sha256": sha}
        self.jobs[job.id] = {"key": _jsonable(job.key), "files": entry}
        self._dirty = True
        if time.monotonic() - self._saved_at >= MANIFEST_EVERY_S:
            self.save()

    def save(self) -> None:
        if self._dirty:
            # one line per job: readable, and small beside indented JSON at 10,000 jobs
            lines = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}"
                               for k, v in sorted(self.jobs.items()))
            text = f'{{"texgen_jobs": {JOBS_FORMAT}, "jobs": {{\n{lines}\n}}}}\n'
            atomic_write_bytes(self.path, text.encode())
            self._dirty, self._saved_at = False, time.monotonic()


def _jsonable(key):
    """The key as the manifest holds it (tuples become lists), to compare like with like."""
    return json.loads(json.dumps(key))


def _execute(fn, args, tick=None, cancel=None) -> list:
    """Run a job where it is scheduled: [(path, bytes, sha256)] of the files it wrote."""
    paths = fn(*args, tick=tick, cancel=cancel)
    return [(str(p), os.path.getsize(p), file_sha256(p)) for p in paths]


# --------------------------------------------------------------------------- running them

def run_jobs(jobs: list[Job], manifest, where: Where = Where(), progress: Progress | None = None,
             cancel: Callable[[], bool] | None = None,
             redo: bool = False) -> tuple[list[str], list[str]]:
    """Run the jobs the manifest does not record as finished (redo: all of them); returns
    (ids run, ids skipped). progress(units done, units to do) as they go. On an error or
    Ctrl-C the jobs still running are stopped, the finished ones stay recorded, and the error
    is raised."""
    book = Manifest(manifest)
    todo, skipped = [], []
    for j in jobs:
        if not redo and book.finished(j):
            skipped.append(j.id)
        else:
            todo.append(j)
    count = _Count(todo, progress)
    finished: set[str] = set()

    def done(job: Job, files: list) -> None:
        book.record(job, files)
        finished.add(job.id)
        count.finish(job)
    try:
        if not todo:
            pass
        elif where.ray is not None:
            _run_ray(todo, where.ray, done)
        elif where.workers > 1 and len(todo) > 1:
            _run_pool(todo, where.workers, done, count, cancel)
        else:
            for job in todo:
                done(job, _execute(job.fn, job.args, tick=count.ticker(job), cancel=cancel))
    except BaseException:
        for job in todo:
            if job.id not in finished and job.cleanup:
                with contextlib.suppress(Exception):
                    job.cleanup()
        raise
    finally:
        book.save()
    return [j.id for j in todo], skipped


class _Count:
    """One progress count over all jobs: whole units per finished job, fractions of running
    ones from their ticks."""

    def __init__(self, todo: list[Job], progress: Progress | None):
        self.progress, self.total = progress, sum(j.units for j in todo)
        self.whole, self.part = 0, {}
        self._say()

    def _say(self) -> None:
        if self.progress:
            done = self.whole + sum(self.part.values())
            self.progress(int(done) if done == int(done) else done, self.total)

    def ticker(self, job: Job):
        def tick(done, total):
            self.part[job.id] = job.units * min(done / max(total, 1), 1.0)
            self._say()
        return tick

    def finish(self, job: Job) -> None:
        self.part.pop(job.id, None)
        self.whole += job.units
        self._say()


# --------------------------------------------------------------------------- a local pool

_pool_queue = None           # in a pool worker: where its jobs' ticks go


def _pool_init(queue) -> None:
    import signal
    import threading
    global _pool_queue
    # Ctrl-C reaches the whole process group: the parent handles it (and stops the workers);
    # a worker that raised KeyboardInterrupt itself would only print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    _pool_queue = queue


def _exit_with_parent() -> None:
    """Worker threads' watch: end this process when the parent is gone (killed, even with -9,
    which no handler of the parent sees); otherwise it would work on to the end, alone."""
    from multiprocessing.connection import wait as wait_for
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait_for([parent.sentinel])
        os._exit(1)


def _pool_execute(index: int, fn, args) -> list:
    q = _pool_queue
    return _execute(fn, args, tick=lambda done, total: q.put((index, done, total)))


def _run_pool(todo: list[Job], workers: int, done, count: _Count, cancel) -> None:
    """The jobs in `workers` spawned processes (onnxruntime's thread pools do not survive a
    fork); their ticks come back through a queue for one progress count."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    ticks = [count.ticker(j) for j in todo]
    pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_pool_init,
                               initargs=(queue,))

    def drain() -> None:
        import queue as queue_mod
        while True:
            try:
                i, d, t = queue.get_nowait()
            except queue_mod.Empty:
                return
            ticks[i](d, t)
    try:
        pending = {pool.submit(_pool_execute, i, j.fn, j.args): j for i, j in enumerate(todo)}
        while pending:
            finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for f in finished:
                job = pending.pop(f)
                try:
                    done(job, f.result())           # a worker's TexgenError surfaces here
                except BrokenProcessPool:
                    raise TexgenError("a worker process died (out of memory, or killed?); "
                                      "rerun to resume, perhaps with fewer --jobs") from None
            if cancel and cancel():
                from texgen.runtime.tiling import Cancelled
                raise Cancelled()
    except BaseException:                       # an error, Ctrl-C, a kill (SIGTERM): stop the
        _stop_workers(pool)                     # workers now, not after their current jobs
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes (their unfinished jobs are redone by a rerun)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=10)


# --------------------------------------------------------------------------- Ray

def import_ray():
    """The ray module, or the one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise TexgenError(RAY_MISSING) from None
    return ray


def _reachable(address: str) -> None:
    """Refuse an address nothing listens on in seconds (Ray itself retries for a minute)."""
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise TexgenError(f"--ray {address!r}: expected HOST:PORT of a Ray cluster's head "
                          f"(e.g. 10.0.0.5:6379), or no value for a local one")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise TexgenError(f"cannot reach a Ray cluster at {address}: "
                          f"{e.strerror or e} (is `ray start --head` running there?)") from None


@contextlib.contextmanager
def connected(address: str):
    """This process as a Ray driver for the block: to `address`, or "auto" (see Where). Ray's
    own log lines and the workers' output stay out of the terminal: errors come back as
    exceptions, and texgen says them in one line."""
    ray = import_ray()
    if ray.is_initialized():                # a caller (a test, a notebook) already connected
        yield ray
        return
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address == "auto":
            ray.init(**quiet)
        else:
            _reachable(address)
            ray.init(address=address, **quiet)
    except TexgenError:
        raise
    except Exception as e:                  # ConnectionError, RuntimeError, ValueError ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise TexgenError(f"cannot connect to the Ray cluster at {address}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _run_ray(todo: list[Job], address: str, done) -> None:
    with connected(address) as ray:
        task = ray.remote(max_retries=RAY_RETRIES, retry_exceptions=False)(_execute)
        gpus = ray.cluster_resources().get("GPU", 0) >= 1
        pending = {task.options(num_gpus=1 if job.gpu and gpus else 0).remote(job.fn, job.args):
                   job for job in todo}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    job = pending.pop(ref)
                    done(job, _ray_result(ray, ref, job))
        except BaseException:               # an error, Ctrl-C: the rest are not wanted
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise


def _ray_result(ray, ref, job: Job) -> list:
    """A task's result; its TexgenError as itself, a worker lost more than RAY_RETRIES times
    as one line."""
    from ray import exceptions as rex
    try:
        return ray.get(ref)
    except rex.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, (TexgenError, OSError, MemoryError)):
            raise cause from None
        raise
    except (rex.WorkerCrashedError, rex.NodeDiedError, rex.OutOfMemoryError) as e:
        raise TexgenError(f"job {job.id}: its Ray worker died {RAY_RETRIES + 1} times "
                          f"({type(e).__name__}); rerun to resume") from None
