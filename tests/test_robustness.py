"""The hardening issue's cases, one test each: every input a user can type ends in one
'error:' line (exit 1) or does what was asked; nothing is destroyed or left behind."""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import one_error_line, png16_bomb, stripes, tiny_config
from texgen import checkpoint
from texgen.cli import main
from texgen.errors import TexgenError
from texgen.runtime.imageio import read_image, save_image


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# ----------------------------------------------------------------------------- option values

@pytest.mark.parametrize("args", [
    ["generate", "--seed", "-1"], ["generate", "--morph", "-3"],
    ["generate", "--seed", str(2 ** 63)], ["generate", "--tile", "0"],
    ["generate", "--threads", "0"], ["generate", "--normal-strength", "nan", "--maps", "normal"],
    ["generate", "--normal-strength", "inf", "--maps", "normal"],
    ["generate", "--roughness-base", "2", "--maps", "roughness"],
    ["generate", "--ao-radius", "-1", "--maps", "ao"],
    ["generate", "--height-scales", "1,nan,4", "--maps", "height"],
    ["generate", "--maps", ""], ["generate", "--bits", "16", "--out", "x.jpg"],
])
def test_bad_painting_values_are_one_line(tiny_models, tmp_path, args):
    _, _, onnx_model = tiny_models
    out = [] if "--out" in args else ["--out", tmp_path / "x.png"]
    res = run(*args, "--model", onnx_model, "--size", 64, "--device", "cpu", *out)
    one_error_line(res)
    assert files(tmp_path) == []


@pytest.mark.parametrize("args", [
    ["--seed", "-1"], ["--seed", str(2 ** 63)], ["--iters", "0"], ["--iters", "-1"],
    ["--patch", "0"], ["--batch", "0"], ["--batch", "-2"], ["--lr", "nan"], ["--lr", "-0.1"],
    ["--lr", "inf"], ["--descriptor-weight", "-1"], ["--descriptor-weight", "nan"],
    ["--style-scale", "0", "--method", "texnet"], ["--diversity", "nan", "--method", "texnet"],
    ["--style-scale", "2", "--method", "psgan"],    # a texnet option given to psgan
    ["--style-scale", "2", "--lattice-weight", "5"],  # options of two methods: auto takes neither
    ["--method", "texnet", "--maps", "normal=x.png"],
])
def test_bad_training_values_are_one_line_and_make_nothing(tiny_models, tmp_path, tiny_preset,
                                                           args):
    ex, _, _ = tiny_models
    res = run("train", ex, "--out", tmp_path / "m", *args)
    one_error_line(res)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--stroke-scale", "nan"],
                                  ["--stroke-scale", "5"], ["--tile", "-4"]])
def test_bad_stylize_values(tiny_models, tmp_path, args):
    ex, model, _ = tiny_models
    one_error_line(run("stylize", "--model", model, "--content", ex, *args,
                       "--out", tmp_path / "o.png"))
    assert files(tmp_path) == []


def test_bad_synth_and_export_set_values(tiny_models, tmp_path):
    ex, _, onnx_model = tiny_models
    one_error_line(run("synth", ex, "--seed", -1, "--out", tmp_path / "s.png"))
    one_error_line(run("synth", ex, "--lr", "nan", "--out", tmp_path / "s.png"))
    for args in (["--maps", ""], ["--jobs", 0], ["--roughness-base", 2], ["--tile", 0],
                 ["--seeds", "-1"]):
        one_error_line(run("export-set", "--model", onnx_model, "--size", 64, *args,
                           "--out", tmp_path / "lib"))
    assert files(tmp_path) == []


def test_usage_mistakes_are_one_line_too():
    for args in (["generate", "--bogus"], ["nosuch"], ["train"], ["export"]):
        line = one_error_line(run(*args))
        assert "--help" in line
    assert run().exit_code == 0 and "Usage" in run().output      # bare `texgen`: its help


# ----------------------------------------------------------------------------- output paths

def test_unwritable_outputs_are_refused_before_any_work(tiny_models, unwritable, tiny_preset):
    ex, model, onnx_model = tiny_models
    for args in (["train", ex, "--out", unwritable / "m"],
                 ["export-set", "--model", onnx_model, "--seeds", 1, "--size", 64,
                  "--out", unwritable / "lib"],
                 ["eval", "--model", onnx_model, "--exemplar", ex, "--report", unwritable / "r"],
                 ["generate", "--model", onnx_model, "--out", unwritable / "x.png"],
                 ["export", model, "--out", unwritable / "m.onnx"]):
        one_error_line(run(*args), "cannot write|permission denied|read-only")


def test_export_never_destroys_a_model(tiny_models, tmp_path):
    _, model, _ = tiny_models
    before = (model / "model.safetensors").read_bytes()
    one_error_line(run("export", model, "--out", model / "model.safetensors"), r"\.onnx")
    one_error_line(run("export", model, "--out", tmp_path / "x.png"), r"\.onnx")
    assert (model / "model.safetensors").read_bytes() == before
    assert not (tmp_path / "x.png").exists()
    assert run("export", model, "--out", tmp_path / "m.onnx").exit_code == 0
    one_error_line(run("export", model, "--out", tmp_path / "m.onnx"), "--force")
    assert run("export", model, "--out", tmp_path / "m.onnx", "--force").exit_code == 0


def test_an_input_is_never_an_output(tiny_models, tmp_path):
    ex, model, _ = tiny_models
    photo = tmp_path / "photo.png"
    save_image(photo, stripes(48, 48))
    before = photo.read_bytes()
    one_error_line(run("synth", photo, "--iters", 1, "--out", photo), "input")
    one_error_line(run("stylize", "--model", model, "--content", photo, "--out", photo), "input")
    assert photo.read_bytes() == before
    tiled = tmp_path / "repeat_2x2.png"                     # the name eval's report writes
    save_image(tiled, stripes(48, 48))
    before = tiled.read_bytes()
    one_error_line(run("eval", "--image", tiled, "--report", tmp_path), "input")
    assert tiled.read_bytes() == before


def test_out_through_a_symlink_writes_its_target(tiny_models, tmp_path):
    _, _, onnx_model = tiny_models
    (tmp_path / "real.png").write_bytes(b"old")
    (tmp_path / "link.png").symlink_to("real.png")
    res = run("generate", "--model", onnx_model, "--device", "cpu", "--size", 64,
              "--out", tmp_path / "link.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "link.png").is_symlink()
    assert read_image(tmp_path / "real.png").shape == (64, 64, 3)


# ----------------------------------------------------------------------------- resume

@pytest.fixture
def trained(tiny_models, tmp_path, tiny_preset):
    ex = tiny_models[0]
    out = tmp_path / "m"
    res = run("train", ex, "--out", out, "--licence", "CC0")
    assert res.exit_code == 0, res.output
    return ex, out


def test_resume_refuses_what_differs_and_keeps_the_provenance(trained, tmp_path, tiny_preset):
    ex, out = trained
    other = tmp_path / "other.png"
    save_image(other, stripes(64, 64, period=5.0))
    same_pixels = tmp_path / "renamed.png"
    same_pixels.write_bytes(ex.read_bytes())
    before = (out / "model.safetensors").read_bytes()
    for args, match in ((["--iters", 4, other], "same images"),
                        (["--iters", 4, "--preset", "full", ex], "--preset full"),
                        (["--iters", 4, "--batch", 4, ex], "--batch 4 differs from its 2"),
                        (["--iters", 4, "--patch", 64, ex], "--patch 64"),
                        (["--iters", 4, "--seed", 3, ex], "--seed 3"),
                        (["--iters", 4, "--licence", "GPL", ex], "--licence GPL"),
                        (["--iters", 4, "--method", "texnet", ex], "psgan model"),
                        (["--iters", 2, ex], "already at iteration 2"),
                        ([ex], "already at iteration 2")):
        one_error_line(run("train", "--out", out, "--resume", *args), match)
    assert (out / "model.safetensors").read_bytes() == before
    res = run("train", same_pixels, "--out", out, "--resume", "--iters", 4)   # the same photo
    assert res.exit_code == 0, res.output
    _, meta = checkpoint.load_model(out)
    assert meta["iteration"] == 4
    assert meta["provenance"]["licence"] == "CC0"                  # not rewritten
    assert meta["provenance"]["exemplars"] == [ex.name]


def test_resuming_a_texnet_model_as_psgan_is_one_line(tmp_path):
    from texgen.models.texnet import TexNet, TexNetConfig
    cfg = TexNetConfig(levels=3, noise=2, width=4)
    out = tmp_path / "t"
    G = TexNet(cfg)
    info = {"model": "texnet", "config": cfg.to_dict(), "iteration": 1, "train": {"iters": 5},
            "provenance": {"method": "texnet"}}
    checkpoint.save_model(out, G, info)
    opt = torch.optim.Adam(G.parameters())
    checkpoint.save_training(out, G, None, opt, None, np.random.default_rng(0), info)
    ex = tmp_path / "ex.png"
    save_image(ex, stripes(48, 48))
    one_error_line(run("train", ex, "--out", out, "--resume", "--method", "psgan"),
                   "texnet model: resume it with --method texnet")


# ----------------------------------------------------------------------------- interruption

def test_a_second_ctrl_c_cannot_tear_a_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C in iteration 3 saves iteration 2; a second Ctrl-C arriving while that save
    writes training.safetensors waits until model.safetensors is written too: both files say
    iteration 2, as the message did, and the run then stops."""
    from texgen.train import psgan
    from texgen.train.psgan import TrainConfig, train
    calls, real_step, real_save = [], psgan.gan_step, checkpoint.save_training

    def step(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt                         # the first Ctrl-C
        return real_step(*a, **k)

    def save_training(folder, *a, **k):
        os.kill(os.getpid(), signal.SIGINT)                 # the second, mid-save
        time.sleep(0.05)                                    # (delivered here without the hold)
        return real_save(folder, *a, **k)
    monkeypatch.setattr(psgan, "gan_step", step)
    monkeypatch.setattr(checkpoint, "save_training", save_training)
    log = []
    cfg = TrainConfig(iters=10, batch=2, patch=32, ckpt_every=100, preview_every=100)
    with pytest.raises(KeyboardInterrupt):
        train([stripes()], tmp_path / "m", tiny_config(), cfg, log=log.append)
    assert "saving iteration 2" in log[-1]
    assert checkpoint.load_model(tmp_path / "m")[1]["iteration"] == 2
    assert checkpoint.training_info(tmp_path / "m")["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # restored


def test_ctrl_c_during_a_periodic_save_waits_for_it_and_does_not_save_twice(tmp_path):
    from texgen.train.common import run_iterations
    saved = []

    def save(done):
        if not saved:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        saved.append(done)
    log = []
    with pytest.raises(KeyboardInterrupt):
        run_iterations(lambda it: (True, {}), 0, 10, save, lambda d: None, 2, 100, tmp_path,
                       log=log.append)
    assert saved == [2]                                     # finished, and only once
    assert "iteration 2 is saved" in log[-1]


def test_ctrl_c_before_the_first_iteration_leaves_nothing(tmp_path, tiny_models, tiny_preset,
                                                          monkeypatch):
    from texgen.train import psgan

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(psgan, "gan_step", interrupted)
    res = run("train", tiny_models[0], "--out", tmp_path / "m")
    assert res.exit_code == 130 and "interrupted" in res.output
    assert not (tmp_path / "m").exists()                    # no folder holding exemplar.png


def test_a_failed_training_leaves_no_model_folder(tmp_path, tiny_models, tiny_preset,
                                                 monkeypatch):
    from texgen.train import psgan

    def diverges(*a, **k):
        raise TexgenError("training diverged (losses are NaN)")
    monkeypatch.setattr(psgan, "gan_step", diverges)
    one_error_line(run("train", tiny_models[0], "--out", tmp_path / "m"), "diverged")
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------- texture sets

def one_set(tiny_models, lib):
    """Export set 1 of the tiny model into lib; returns the command, to run it again."""
    args = ["export-set", "--model", tiny_models[2], "--seeds", 1, "--size", 64, "--format",
            "png8", "--out", lib]
    assert run(*args).exit_code == 0
    return args


def test_a_killed_runs_temp_beside_the_contact_sheet_is_swept(tiny_models, tmp_path):
    lib = tmp_path / "lib"
    args = one_set(tiny_models, lib)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    left = lib / f".contact_sheet.png.{p.pid}-a1b2c3d4.tmp.png"    # a kill -9's leftover
    left.write_bytes(b"\x89PNG" + bytes(1000))
    res = run(*args)
    assert res.exit_code == 0 and "1 already finished" in res.output
    assert not left.exists()
    assert not [f for f in files(lib) if ".tmp" in f]


def test_a_damaged_manifest_is_one_line_and_overwrite_redoes_it(tiny_models, tmp_path):
    lib = tmp_path / "lib"
    args = one_set(tiny_models, lib)
    manifest = lib / "tiny_0001" / "manifest.json"
    for settings in ([1, 2], "x", None, 7):
        m = json.loads(manifest.read_text())
        m["settings"] = settings
        manifest.write_text(json.dumps(m))
        one_error_line(run(*args), "damaged.*--overwrite")
    assert run(*args, "--overwrite").exit_code == 0
    assert isinstance(json.loads(manifest.read_text())["settings"], dict)


def test_a_failing_export_set_leaves_no_empty_folders(tiny_models, tmp_path, monkeypatch):
    from texgen.runtime.onnx_painter import OnnxPainter

    def fails(self, *a, **k):
        raise TexgenError("painting failed")
    monkeypatch.setattr(OnnxPainter, "paint", fails)
    one_error_line(run("export-set", "--model", tiny_models[2], "--seeds", "1-2", "--size", 64,
                       "--out", tmp_path / "lib"), "painting failed")
    assert files(tmp_path) == []


def _children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")
def test_export_set_workers_die_with_their_parent(tiny_models, tmp_path):
    """kill -9 of `export-set --jobs 2`: no handler runs in the parent, yet its workers stop
    within seconds instead of painting their sets to the end."""
    cmd = [sys.executable, "-m", "texgen.cli", "export-set", "--model", str(tiny_models[2]),
           "--seeds", "1-40", "--size", "1024", "--jobs", "2", "--out", str(tmp_path / "lib")]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        workers = []
        while time.time() < deadline and len(workers) < 2 and parent.poll() is None:
            time.sleep(0.2)
            workers = [k for k in _children(parent.pid)
                       if "spawn_main" in open(f"/proc/{k}/cmdline").read()]
        assert len(workers) == 2, "the workers did not start"
        time.sleep(1.0)                                     # let them start painting
        parent.kill()
        parent.wait()
        deadline = time.time() + 15
        while time.time() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
            time.sleep(0.2)
        alive = []
        for w in workers:
            try:
                with open(f"/proc/{w}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(w)
            except OSError:
                pass
        assert not alive, f"workers {alive} outlived their parent"
    finally:
        parent.kill()


# ----------------------------------------------------------------------------- bounded decoding

def test_a_16_bit_png_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png16_bomb())                          # 256 MiB of pixel data
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(TexgenError, match="wrong size"):
            read_image(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2 ** 20:.0f} MiB allocated"    # the 256 MiB never exist
    one_error_line(run("eval", "--image", bomb))


def test_files_bigger_than_any_allowed_image_are_not_read(tmp_path):
    big = tmp_path / "big.png"
    save_image(big, np.random.default_rng(0).random((64, 64, 3)))
    with open(big, "ab") as f:
        f.write(bytes(3 << 20))                             # 3 MiB after IEND, which readers skip
    assert read_image(big).shape == (64, 64, 3)
    with pytest.raises(TexgenError, match="MiB, more than an image"):
        read_image(big, max_pixels=4096)                    # the 64 Mpx limit scaled down


def test_an_exr_claiming_a_huge_image_is_refused_before_allocating(tmp_path):
    from texgen.runtime.exr import read_exr, write_exr
    p = tmp_path / "a.exr"
    write_exr(p, np.zeros((8, 8, 3), np.float32), compression="none")
    data = bytearray(p.read_bytes())
    at = data.index(b"dataWindow\0box2i\0") + len(b"dataWindow\0box2i\0") + 4
    data[at:at + 16] = struct.pack("<iiii", 0, 0, 99999, 99999)     # 10 Gpx
    p.write_bytes(bytes(data))
    with pytest.raises(TexgenError, match="Mpx limit"):
        read_exr(p)


@pytest.mark.skipif(sys.platform != "linux", reason="limits the address space (Linux)")
def test_out_of_memory_at_the_largest_size_is_one_line(tiny_models, tmp_path):
    """A 65536 x 65536 TGA is held in memory (only PNGs are streamed): 12 GiB. Under a 4 GiB
    address-space limit the allocation fails, as on a machine without the memory, and the
    answer is one line saying so."""
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
            "from texgen.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code, "generate", "--model", str(tiny_models[2]),
                        "--device", "cpu", "--size", "65536", "--out", str(tmp_path / "big.tga")],
                       capture_output=True, text=True, timeout=120)
    last = r.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert last.startswith("error: out of memory") and "12.0 GiB" in last and "--size" in last
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- messages

def test_info_reads_onnx_files(tiny_models):
    res = run("info", tiny_models[2])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["kind"] == "psgan" and d["maps"] == ["color"] and d["noise_layout"]["n_periodic"] == 2


def test_an_onnx_file_of_a_newer_ir_version_is_not_called_corrupt(tiny_models, tmp_path):
    import onnx
    from texgen.export.onnx_export import _seal
    from texgen.runtime.onnx_painter import DIGEST_KEY, DIGEST_PLACEHOLDER
    m = onnx.load(str(tiny_models[2]))
    m.ir_version = 99
    for p in m.metadata_props:
        if p.key == DIGEST_KEY:
            p.value = DIGEST_PLACEHOLDER
    (tmp_path / "new.onnx").write_bytes(_seal(m))
    line = one_error_line(run("info", tmp_path / "new.onnx"), "IR version 99")
    assert "corrupt" not in line and "upgrade onnxruntime" in line


def test_eval_image_writes_the_report_it_is_given(tiny_models, tmp_path):
    res = run("eval", "--image", tiny_models[0], "--report", tmp_path / "r")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert data["seam_score"] == json.loads(res.output)["seam_score"]
    assert read_image(tmp_path / "r" / "repeat_2x2.png").shape == (128, 128, 3)


def test_eval_refuses_a_small_exemplar_before_painting(tiny_models, tmp_path):
    one_error_line(run("eval", "--model", tiny_models[2], "--exemplar", tiny_models[0],
                       "--report", tmp_path / "r", "--size", 64, "--device", "cpu"),
                   "at least 128 px")
    assert not (tmp_path / "r").exists()


def test_period_note_only_when_it_shows_and_in_the_users_sizes():
    from texgen.paint import period_note, TorchPainter
    from texgen.runtime.canvas import period_distortions
    from texgen.builtin import builtin_path
    G = TorchPainter(builtin_path(None)).G                  # the built-in bricks
    assert period_note(G, 0, 1024, 1024) is None            # the first demo: nothing to say
    assert period_note(G, 0, 2000, 1000) is None            # was "26 %": an axis artefact
    note = period_note(G, 0, 100, 100, tileable=False)
    assert note and "100x100" in note and "cut from" in note
    assert "150" not in note and "157" not in note          # no internal torus size
    # the measure is the wave vector's: a nearly vertical wave whose tiny x part rounds to
    # half of itself barely moves
    k = np.array([[8.2268, -0.1374]])
    assert period_distortions(k, 31, 62)[0] < 0.02


def test_an_unforeseen_exception_is_one_line_naming_a_bug(monkeypatch):
    """The last line of defence: a bug still answers in one line, says it is one, and
    TEXGEN_DEBUG=1 shows the traceback for the report."""
    import texgen.builtin

    def broken():
        raise ValueError("something nobody foresaw\nsecond line")
    monkeypatch.setattr(texgen.builtin, "list_builtin", broken)
    res = run("models")
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    line = res.output.strip()
    assert "\n" not in line and line.startswith("error: unexpected ValueError: something "
                                                "nobody foresaw") and "texgen bug" in line
    monkeypatch.setenv("TEXGEN_DEBUG", "1")
    assert isinstance(run("models").exception, ValueError)
