"""A real Ray cluster on this machine's loopback, for tests/test_cluster.py and
benchmarks/scale.py: `ray start --head` and worker nodes, each its own process session, all
stopped afterwards by session (never `ray stop`, which ends every Ray process on the machine).

Ray rewrites 127.0.0.1 into the machine's outward address (so that other hosts could join);
loopback() undoes that, in the `ray start` processes (LOOPBACK runs Ray's CLI with it) and in
the driver, so nothing here listens on or connects to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Ray's own CLI, with its loopback rewrite undone
PATCH = "import ray._private.services as s; s.resolve_ip_for_localhost = lambda h: h"
LOOPBACK = f"import sys; {PATCH}; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"


@contextlib.contextmanager
def loopback():
    """In this process (a driver), for the block: keep Ray's addresses on 127.0.0.1."""
    import ray._private.services as services
    real = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = real


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`with LocalCluster(cpus=(1, 1)) as c:` a head node and one worker node of one CPU each;
    c.address is 127.0.0.1:PORT."""

    def __init__(self, cpus=(1, 1), start_timeout: float = 120.0):
        self.cpus, self.timeout = cpus, start_timeout
        self.temp = Path(tempfile.mkdtemp(prefix="tgray"))    # short: Ray's socket paths
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _start(self, *args) -> None:
        log = open(self.temp / f"node{len(self.procs)}.log", "w")
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        self.procs.append(subprocess.Popen(
            [sys.executable, "-c", LOOPBACK, "start", "--block", "--node-ip-address=127.0.0.1",
             "--disable-usage-stats", *args], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True))        # its own session: stop() finds all it started

    def __enter__(self) -> "LocalCluster":
        try:
            self._start("--head", f"--port={self.port}", f"--num-cpus={self.cpus[0]}",
                        "--include-dashboard=false", f"--temp-dir={self.temp}")
            self._wait(lambda: _listening(self.port), "head node")
            for n in self.cpus[1:]:
                self._start(f"--address={self.address}", f"--num-cpus={n}")
            self._wait_nodes()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait(self, ready, what: str) -> None:
        deadline = time.time() + self.timeout
        while not ready():
            if time.time() > deadline or any(p.poll() is not None for p in self.procs):
                logs = "".join((self.temp / f"node{i}.log").read_text()[-2000:]
                               for i in range(len(self.procs)))
                raise RuntimeError(f"the Ray {what} did not start:\n{logs}")
            time.sleep(0.5)

    def _wait_nodes(self) -> None:
        """Until every node has joined (asked as a driver, which then disconnects)."""
        import ray
        with loopback():
            ray.init(address=self.address, log_to_driver=False, logging_level="ERROR")
            try:
                self._wait(lambda: sum(n["Alive"] for n in ray.nodes()) == len(self.cpus),
                           "worker nodes")
            finally:
                ray.shutdown()

    def stop(self) -> None:
        """SIGTERM each node's `ray start` (it drains and ends its processes), then SIGKILL
        whatever is left in those sessions: only what this cluster started."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 20
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        sessions = {p.pid for p in self.procs}
        for pid in _session_members(sessions):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def _session_members(sessions: set[int]) -> list[int]:
    """Processes (not zombies) whose session is one of `sessions` (Linux /proc)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) in sessions:
            found.append(int(d))
    return found
