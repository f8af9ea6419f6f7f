"""texgen/files.py: atomic writes through symlinks, the sweep of temps a killed run left (and
never a live writer's), undoing what a failed run wrote."""

import os
import subprocess
import sys
import time

import pytest

from texgen.errors import TexgenError
from texgen.files import atomic_path, atomic_write_bytes, sweep_temps, undo_on_failure


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temps_carry_the_writers_pid_and_are_removed_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "a.png") as tmp:
            assert tmp.name.startswith(f".a.png.{os.getpid()}-") and tmp.name.endswith(".tmp.png")
            tmp.write_bytes(b"half")
            raise RuntimeError("a bug mid-write")
    assert os.listdir(tmp_path) == []


def test_the_next_write_sweeps_a_killed_runs_temps_and_no_live_ones(tmp_path):
    dead, live = _dead_pid(), os.getppid()          # our parent is alive while we run
    left = tmp_path / f".sheet.png.{dead}-abcd1234.tmp.png"        # kill -9 leftovers
    busy = tmp_path / f".sheet.png.{live}-efgh5678.tmp.png"        # another writer, still at it
    other = tmp_path / f".other.png.{dead}-abcd1234.tmp.png"       # another target's
    old = tmp_path / ".sheet.png.x1y2z3w4.tmp.png"                 # an older texgen's, no PID
    mine = tmp_path / "notes.tmp.txt"                              # not a temp of ours at all
    for p in (left, busy, other, old, mine):
        p.write_bytes(b"x")
    atomic_write_bytes(tmp_path / "sheet.png", b"whole")
    names = set(os.listdir(tmp_path))
    assert left.name not in names                                  # swept
    assert {busy.name, other.name, old.name, mine.name} <= names   # live, elsewhere, too young
    assert (tmp_path / "sheet.png").read_bytes() == b"whole"
    # a folder-wide sweep takes every dead writer's temp; an exclusive folder also the old kind
    assert set(sweep_temps(tmp_path)) == {other}
    assert set(sweep_temps(tmp_path, exclusive=True)) == {old}
    assert sorted(os.listdir(tmp_path)) == sorted([busy.name, mine.name, "sheet.png"])


def test_a_pidless_temp_is_swept_once_it_is_an_hour_old(tmp_path):
    old = tmp_path / ".m.safetensors.k2j3h4g5.tmp.safetensors"
    old.write_bytes(b"x")
    assert sweep_temps(tmp_path) == []
    an_hour_ago = time.time() - 3700
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert sweep_temps(tmp_path) == [old]


def test_writes_go_through_a_symlink(tmp_path):
    (tmp_path / "real.png").write_bytes(b"old")
    (tmp_path / "link.png").symlink_to("real.png")
    atomic_write_bytes(tmp_path / "link.png", b"new")
    assert (tmp_path / "link.png").is_symlink()                    # the link stays a link
    assert (tmp_path / "real.png").read_bytes() == b"new"


def test_undo_on_failure_removes_only_what_the_block_added(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(TexgenError):
        with undo_on_failure(out):
            out.mkdir()
            (out / "exemplar.png").write_bytes(b"x")
            raise TexgenError("failed before the first checkpoint")
    assert not out.exists()                                        # it made the folder: gone

    out.mkdir()
    (out / "mine.txt").write_bytes(b"the user's")
    with pytest.raises(KeyboardInterrupt):
        with undo_on_failure(out):
            (out / "preview.png").write_bytes(b"x")
            raise KeyboardInterrupt
    assert os.listdir(out) == ["mine.txt"]                         # theirs stays

    with pytest.raises(TexgenError):
        with undo_on_failure(out, keep=lambda: (out / "model.safetensors").exists()):
            (out / "model.safetensors").write_bytes(b"a checkpoint")
            raise TexgenError("diverged after a checkpoint")
    assert (out / "model.safetensors").exists()                    # worth keeping: resumable
