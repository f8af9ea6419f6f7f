"""texgen/cluster.py and --ray on a real Ray cluster: a head node and one worker node of one
CPU each, started on 127.0.0.1 for this module (tests/ray_local.py) and stopped after it.

Each --ray run is compared with the same command without it (same bytes); the painting or
training function is broken in this process during a --ray run, so a pass proves the work ran
in Ray's workers. A worker SIGKILLed mid-tile still gives the whole set; a rerun runs no job
twice. Skipped only where Ray is not installed (the missing-Ray error is tested anyway)."""

import json
import os
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import one_error_line, stripes
from texgen.cli import main as cli
from texgen.cluster import JOBS_FILE, Job, Where, run_jobs
from texgen.errors import TexgenError


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def tree(folder: Path) -> dict:
    """{relative path: bytes} of every file under folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def mtimes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cluster():
    """The cluster's address; this process keeps Ray's addresses on loopback meanwhile."""
    pytest.importorskip("ray")
    import ray.cloudpickle
    from ray_local import LocalCluster, loopback
    # this module's job functions travel by value: Ray's workers cannot import a test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with LocalCluster(cpus=(1, 1)) as c, loopback():
        yield c.address


def broken(*args, **kwargs):
    raise AssertionError("this ran in the driver, not in a Ray worker")


# ----------------------------------------------------------------------------- the commands

def test_udim_set_on_ray_is_the_plain_runs_bytes(cluster, tiny_models, tmp_path, monkeypatch):
    args = ["generate", "--model", tiny_models[2], "--udim", "2x2", "--tile-size", 64,
            "--seed", 5, "--device", "cpu"]
    res = run(*args, "--out", tmp_path / "plain" / "wall.png")
    assert res.exit_code == 0, res.output
    from texgen.runtime import udim
    with monkeypatch.context() as m:
        m.setattr(udim, "paint_udim_tile", broken)
        m.chdir(tmp_path)                           # a relative path: the workers' cwd differs
        res = run(*args, "--out", "ray/wall.png", "--ray", cluster)
    assert res.exit_code == 0, res.output
    assert "wrote 4 UDIM tiles" in res.output
    plain, ray = tree(tmp_path / "plain"), tree(tmp_path / "ray")
    assert [f for f in ray if f.endswith(".png")] == \
        ["wall.1001.png", "wall.1002.png", "wall.1011.png", "wall.1012.png"]
    assert ray == plain                     # the tiles and the job manifest, byte for byte
    before = mtimes(tmp_path / "ray")
    res = run(*args, "--out", tmp_path / "ray" / "wall.png", "--ray", cluster)
    assert res.exit_code == 0 and "(4 already painted)" in res.output, res.output
    assert mtimes(tmp_path / "ray") == before


def test_export_set_on_ray_is_the_plain_runs_bytes(cluster, tiny_models, tmp_path, monkeypatch):
    args = ["export-set", "--model", tiny_models[2], "--seeds", "1-3", "--size", 64,
            "--maps", "color,normal,roughness", "--format", "png8"]
    assert run(*args, "--out", tmp_path / "plain").exit_code == 0
    from texgen.runtime import texture_set
    with monkeypatch.context() as m:
        m.setattr(texture_set, "export_set", broken)
        res = run(*args, "--out", tmp_path / "ray", "--ray", cluster)
    assert res.exit_code == 0, res.output
    assert "wrote 3 sets" in res.output
    plain, ray = tree(tmp_path / "plain"), tree(tmp_path / "ray")
    assert len(ray) == 3 * 5 + 2            # 3 maps, preview, manifest; contact sheet, jobs
    assert ray == plain
    before = mtimes(tmp_path / "ray")
    res = run(*args, "--out", tmp_path / "ray", "--ray", cluster)
    assert res.exit_code == 0 and "wrote 0 sets" in res.output, res.output
    assert "3 already finished" in res.output
    assert {k: v for k, v in mtimes(tmp_path / "ray").items() if "contact" not in k} == \
        {k: v for k, v in before.items() if "contact" not in k}


def test_train_many_on_ray_trains_a_model_per_photo(cluster, tmp_path, monkeypatch):
    from texgen.runtime.imageio import save_image
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(photos / "bricks.png", stripes(64, 64, period=8))
    save_image(photos / "planks.png", stripes(64, 64, period=16, seed=1))
    monkeypatch.chdir(tmp_path)                     # relative paths: the workers' differ
    args = ["train-many", "photos", "--out", "models", "--iters", 2, "--patch", 32,
            "--batch", 2]
    from texgen import cli as cli_module
    with monkeypatch.context() as m:
        m.setattr(cli_module, "_train", broken)
        res = run(*args, "--ray", cluster)
    assert res.exit_code == 0, res.output
    assert "trained 2 models" in res.output
    from texgen import checkpoint
    from texgen.painters import open_painter
    for name in ("bricks", "planks"):
        folder = tmp_path / "models" / name
        meta = checkpoint.load_model(folder)[1]
        assert meta["iteration"] == 2 and meta["provenance"]["exemplars"] == [f"{name}.png"]
        img = open_painter(str(folder)).paint(64, 64, seed=1)
        assert img.shape == (3, 64, 64) and abs(img).max() <= 1.0 and img.std() > 0
    book = json.loads((tmp_path / "models" / JOBS_FILE).read_text())
    assert sorted(book["jobs"]) == ["bricks", "planks"]
    before = mtimes(tmp_path / "models")
    res = run(*args, "--ray", cluster)
    assert res.exit_code == 0 and "trained 0 models" in res.output, res.output
    assert "2 already finished" in res.output
    assert mtimes(tmp_path / "models") == before


# ----------------------------------------------------------------------------- jobs on Ray

def tile_dying_once(marker: str, model: str, out: str, number: int, tick=None, cancel=None):
    """UDIM tile `number` of a 2x2 set of 64 px tiles, seed 5; the first attempt anywhere
    SIGKILLs its own worker after the first band of the tile is painted (a temp PNG half
    written): no handler runs, no cleanup."""
    from texgen.painters import shared_painter
    from texgen.runtime.udim import paint_udim_tile
    first = not os.path.exists(marker)

    def die(done, total):
        Path(marker + ".killed").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if first:
        Path(marker).touch()
    path = paint_udim_tile(shared_painter(model, "cpu", 1), out, 2, 2, 64, number, seed=5,
                           tile=1, progress=die if first else None)
    return [path]


def test_a_killed_worker_is_retried_and_the_set_is_whole(cluster, tiny_models, tmp_path):
    res = run("generate", "--model", tiny_models[2], "--udim", "2x2", "--tile-size", 64,
              "--seed", 5, "--tile", 1, "--device", "cpu", "--out", tmp_path / "plain" / "w.png")
    assert res.exit_code == 0, res.output
    out = tmp_path / "ray"
    out.mkdir()
    jobs = [Job(str(n), tile_dying_once, (str(tmp_path / f"m{n}"), str(tiny_models[2]),
                                           str(out / "w.png"), n))
            for n in (1001, 1002, 1011, 1012)]
    ran, skipped = run_jobs(jobs, out / JOBS_FILE, Where(ray=cluster))
    assert sorted(ran) == ["1001", "1002", "1011", "1012"] and skipped == []
    for n in (1001, 1002, 1011, 1012):          # every first attempt was killed mid-tile
        assert (tmp_path / f"m{n}.killed").exists()
        assert (out / f"w.{n}.png").read_bytes() == (tmp_path / "plain" / f"w.{n}.png").read_bytes()
    assert not [p for p in os.listdir(out) if ".tmp" in p]     # the killed temps were swept


def counted(folder: str, name: str, text: str, tick=None, cancel=None):
    """Writes folder/name and appends a line to folder/runs.log each time it runs."""
    from texgen.files import atomic_write_bytes
    with open(Path(folder) / "runs.log", "a") as f:
        f.write(name + "\n")
    atomic_write_bytes(Path(folder) / name, text.encode())
    return [Path(folder) / name]


def failing(tick=None, cancel=None):
    raise TexgenError("the disk of node 7 is full")


def test_a_rerun_runs_only_unfinished_jobs(cluster, tmp_path):
    def jobs(key="v1"):
        return [Job(n, counted, (str(tmp_path), f"{n}.txt", n * 3), key={"v": key})
                for n in ("a", "b", "c")]
    book = tmp_path / JOBS_FILE
    assert run_jobs(jobs(), book, Where(ray=cluster)) == (["a", "b", "c"], [])
    ticks = []
    assert run_jobs(jobs(), book, Where(ray=cluster), lambda d, t: ticks.append((d, t))) == \
        ([], ["a", "b", "c"])
    assert ticks == [(0, 0)]
    (tmp_path / "b.txt").write_text("bbX")              # same size, other bytes: redone
    changed = jobs()
    changed[2] = Job("c", counted, (str(tmp_path), "c.txt", "ccc"), key={"v": "v2"})
    assert run_jobs(changed, book, Where(ray=cluster)) == (["b", "c"], ["a"])
    assert sorted((tmp_path / "runs.log").read_text().split()) == \
        ["a.txt", "b.txt", "b.txt", "c.txt", "c.txt"]
    assert (tmp_path / "b.txt").read_text() == "bbb"
    assert json.loads(book.read_text())["jobs"]["c"]["key"] == {"v": "v2"}
    with pytest.raises(TexgenError, match="^the disk of node 7 is full$"):
        run_jobs([Job("x", failing, ())], tmp_path / "other.json", Where(ray=cluster))


def test_jobs_here_skip_redo_and_survive_a_damaged_manifest(tmp_path):
    """The same bookkeeping without Ray (this process): a rerun runs nothing, redo runs all,
    a damaged or foreign manifest means nothing is known to be finished."""
    jobs = [Job(n, counted, (str(tmp_path), f"{n}.txt", n)) for n in ("a", "b")]
    book = tmp_path / JOBS_FILE
    ticks = []
    assert run_jobs(jobs, book, progress=lambda d, t: ticks.append((d, t))) == (["a", "b"], [])
    assert ticks == [(0, 2), (1, 2), (2, 2)]
    assert run_jobs(jobs, book) == ([], ["a", "b"])
    assert run_jobs(jobs, book, redo=True) == (["a", "b"], [])
    for damage in ("{not json", '{"texgen_jobs": 99, "jobs": {}}', "[]"):
        book.write_text(damage)
        assert run_jobs(jobs, book) == (["a", "b"], [])
        assert sorted(json.loads(book.read_text())["jobs"]) == ["a", "b"]
    assert (tmp_path / "runs.log").read_text().split().count("a.txt") == 5   # 1 + redo + 3


# ----------------------------------------------------------------------------- refusals

def test_ray_refusals_are_one_line(tiny_models, tmp_path, monkeypatch):
    """Without Ray installed, with an address nothing listens on, and with --ray where it
    does not apply: one line each, before any work (no cluster needed)."""
    from ray_local import free_port
    model = tiny_models[2]
    commands = [["generate", "--model", model, "--udim", "2x2", "--tile-size", 64,
                 "--out", tmp_path / "g" / "w.png"],
                ["export-set", "--model", model, "--seeds", "1", "--size", 64,
                 "--out", tmp_path / "lib"],
                ["train-many", tiny_models[0], "--out", tmp_path / "models"]]
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "ray", None)             # import ray fails: not installed
        for args in commands:
            one_error_line(run(*args, "--ray"), r"pip install 'texgen\[cluster\]'")
    if _have_ray():
        nowhere = f"127.0.0.1:{free_port()}"
        for args in commands:
            one_error_line(run(*args, "--ray", nowhere),
                           f"cannot reach a Ray cluster at {nowhere}")
        one_error_line(run(*commands[0], "--ray", "no-port"), "expected HOST:PORT")
    one_error_line(run("generate", "--model", model, "--size", 64, "--out", tmp_path / "x.png",
                       "--ray"), "--ray paints the tiles of a UDIM set")
    one_error_line(run(*commands[1], "--jobs", 2, "--ray"), "leave one of them out")
    assert not [p for p in tmp_path.rglob("*")]         # nothing written


def _have_ray() -> bool:
    import importlib
    try:
        importlib.import_module("ray")
    except ImportError:
        return False
    return True
