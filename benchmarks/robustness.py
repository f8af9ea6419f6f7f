"""What texgen answers to what a new user and a hostile tester type: every case through the real
command line, in its own process, checked for the promises of README's "Errors".

    python benchmarks/robustness.py                     # this checkout, ~10 min on 2 cores
    python benchmarks/robustness.py --before 610aabd    # and the same cases on an older commit

Each case runs `texgen ARGS` (the console script) in a fresh folder (inputs are made once: photos,
damaged and crafted image files, a trained model and its ONNX export, a stylisation model) and
is judged on:
  * the answer: exit 0 doing what was asked, or exit 1 with one line starting "error:" as the
    last line on stderr (Ctrl-C: 130, "interrupted"); a traceback or any other exit fails;
  * the expectation: cases built to be refused must be refused, valid ones must succeed;
  * litter: nothing but the intended outputs is left in the case's folder (no temp files, no
    empty folders, no half-made model folder after a refusal);
  * memory and time (the child's peak RSS from wait4).
A few cases are scenarios (kill -9 mid-run and rerun, two Ctrl-Cs during a save, a read-only
file system, an address-space limit). --before runs every case also on `git archive COMMIT`
(PYTHONPATH first, same interpreter), side by side. Writes benchmarks/out/robustness.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import png16_bomb, stripes       # noqa: E402  (the test suite's crafted inputs)
OUT = ROOT / "benchmarks" / "out" / "robustness.md"
# what a user types (`texgen ...`): the console script beside this interpreter, which imports
# texgen.cli from PYTHONPATH first (so --before runs the older checkout the same way)
TEXGEN = ([str(Path(sys.executable).with_name("texgen"))]
          if Path(sys.executable).with_name("texgen").exists() else [sys.executable, "-m", "texgen.cli"])
IN = "IN"                       # replaced by the inputs folder in every argument
BOMB_RSS = 1024                 # MB: a refused 2 MB file may not take more (texgen itself ~270)


@dataclass
class Case:
    command: str                # the group in the results file
    what: str                   # why it is tried
    args: list                  # texgen's arguments (IN/... for inputs)
    expect: str                 # "ok", "error" or "interrupted"
    outputs: tuple = ()         # files (or folders) in the case folder an "ok" run leaves
    scenario: str | None = None  # a name in SCENARIOS for cases that are not one command
    limit_as: int | None = None  # address-space limit (bytes) for the process
    max_rss_mb: float | None = None  # the most memory its answer may take
    timeout: int = 180


@dataclass
class Result:
    rc: int | None
    answer: str                 # exit code and the line that matters
    ok: bool                    # the case's promise held
    why: str = ""               # what broke it
    rss_mb: float = 0.0
    seconds: float = 0.0
    files: list = field(default_factory=list)


# ----------------------------------------------------------------------------- inputs

def make_inputs(folder: Path, src: Path) -> None:
    """Photos, broken files and models every case reads (made with the checkout in `src`)."""
    from PIL import Image
    folder.mkdir(parents=True)
    save = lambda name, a: Image.fromarray((a * 255 + 0.5).astype(np.uint8)).save(folder / name)
    save("s.png", stripes(64, 64))
    save("other.png", stripes(64, 64, period=5.0, seed=3))
    save("photo.png", stripes(160, 200, period=12.0))
    save("tiny.png", stripes(4, 4))
    save("content.png", stripes(70, 90, period=6.0))
    (folder / "s_copy.png").write_bytes((folder / "s.png").read_bytes())
    (folder / "text.png").write_text("not an image")
    data = (folder / "photo.png").read_bytes()
    (folder / "trunc.png").write_bytes(data[:len(data) // 2])
    (folder / "bomb16.png").write_bytes(png16_bomb(inflated=2 << 30))   # 2 MB, 2 GiB inflated
    (folder / "dir.png").mkdir()
    env = dict(os.environ, PYTHONPATH=str(src))
    cli = lambda *a: subprocess.run([sys.executable, "-m", "texgen.cli", *map(str, a)], env=env,
                                    cwd=folder, capture_output=True, text=True, check=True)
    cli("train", "s.png", "--out", "model", "--iters", 2, "--patch", 32, "--batch", 2)
    cli("export", "model", "--out", "model.onnx")
    cli("train", "--method", "stylize", "--style", "s.png", "--content", "photo.png",
        "--out", "stylize", "--iters", 1, "--patch", 32, "--batch", 2)
    cli("export-set", "--model", "model.onnx", "--seeds", 1, "--size", 64, "--format", "png8",
        "--out", "library")
    m = json.loads((folder / "library/model_0001/manifest.json").read_text())
    m["settings"] = ["not", "an", "object"]
    shutil.copytree(folder / "library", folder / "damaged_library")
    (folder / "damaged_library/model_0001/manifest.json").write_text(json.dumps(m))
    # a valid ONNX file of a newer IR version than onnxruntime reads
    import onnx
    sys.path.insert(0, str(ROOT))
    from texgen.export.onnx_export import _seal
    from texgen.runtime.onnx_painter import DIGEST_KEY, DIGEST_PLACEHOLDER
    mp = onnx.load(str(folder / "model.onnx"))
    mp.ir_version = 14
    for p in mp.metadata_props:
        if p.key == DIGEST_KEY:
            p.value = DIGEST_PLACEHOLDER
    (folder / "ir14.onnx").write_bytes(_seal(mp))
    (folder / "cut.onnx").write_bytes((folder / "model.onnx").read_bytes()[:5000])
    (folder / "notes.txt").write_text("a user's file")


# ----------------------------------------------------------------------------- the cases

def cases() -> list[Case]:
    out = []

    def add(command, what, args, expect, outputs=(), **kw):
        out.append(Case(command, what, [str(a) for a in args], expect, tuple(outputs), **kw))

    # generate ---------------------------------------------------------------------------
    g = lambda *a: ["generate", "--size", "64", *a]
    onnx_cpu = ["--model", "IN/model.onnx", "--device", "cpu"]
    add("generate", "the README's first demo (built-in model)", ["generate", "--out", "demo.png"],
        "ok", ["demo.png"])
    add("generate", "a trained model folder", g("--model", "IN/model", "--out", "x.png"), "ok", ["x.png"])
    add("generate", "its .safetensors file", g("--model", "IN/model/model.safetensors", "--out", "x.png"), "ok", ["x.png"])
    add("generate", "the ONNX export", g(*onnx_cpu, "--out", "x.png"), "ok", ["x.png"])
    add("generate", "2000x1000 (period note?)", ["generate", "--size", "2000x1000", "--out", "x.png"], "ok", ["x.png"])
    add("generate", "--no-tileable 100x100 (period note in user sizes?)",
        ["generate", "--size", "100", "--no-tileable", "--out", "x.png"], "ok", ["x.png"])
    add("generate", "16-bit PNG", g("--bits", "16", "--out", "x.png"), "ok", ["x.png"])
    add("generate", "maps beside", g("--maps", "normal,roughness,ao,height", "--out", "x.png"), "ok",
        ["x.png", "x_nor_gl.png", "x_rough.png", "x_ao.png", "x_disp.png"])
    for seed in ("-1", "-5", str(2 ** 63), str(2 ** 64), "1.5", "abc", ""):
        add("generate", f"--seed {seed!r}", g("--seed", seed, "--out", "x.png"), "error")
    for seed in ("0", str(2 ** 63 - 1)):
        add("generate", f"--seed {seed}", g("--seed", seed, "--out", "x.png"), "ok", ["x.png"])
    for morph in ("-3", "x", str(2 ** 64)):
        add("generate", f"--morph {morph!r}", g("--morph", morph, "--out", "x.png"), "error")
    for size in ("0x10", "10x10", "-5", "abc", "64x0", "65537x16", "1e3", "64x64x64", "", " "):
        add("generate", f"--size {size!r}", ["generate", "--size", size, "--out", "x.png"], "error")
    for tile in ("0", "-1", "x"):
        add("generate", f"--tile {tile}", g("--tile", tile, "--out", "x.png"), "error")
    add("generate", "--threads 0", g(*onnx_cpu, "--threads", "0", "--out", "x.png"), "error")
    for opt, val in (("--normal-strength", "nan"), ("--normal-strength", "inf"),
                     ("--normal-strength", "-1"), ("--roughness-base", "2"),
                     ("--roughness-base", "-0.5"), ("--roughness-contrast", "nan"),
                     ("--ao-radius", "-1"), ("--ao-strength", "inf"), ("--height-highpass", "-3"),
                     ("--roughness-blur", "1e309"), ("--height-scales", "1,nan,4"),
                     ("--height-scales", "0,1,2"), ("--height-scales", "1"),
                     ("--height-weights", "0,0,0"), ("--height-weights", "a,b,c")):
        add("generate", f"{opt} {val}", g("--maps", "normal,roughness,ao,height", opt, val,
                                          "--out", "x.png"), "error")
    for maps in ("", ",", "gloss", "normal,normal", "color,nrm"):
        add("generate", f"--maps {maps!r}", g("--maps", maps, "--out", "x.png"), "error")
    add("generate", "--bits 16 with a .jpg", g("--bits", "16", "--out", "x.jpg"), "error")
    add("generate", "--bits 12", g("--bits", "12", "--out", "x.png"), "error")
    for out_ in ("x.exr", "x", "x.onnx", "x.safetensors", "IN/dir.png", "IN/notes.txt/x.png"):
        add("generate", f"--out {out_}", g("--out", out_), "error")
    add("generate", "--out the model file itself", g("--model", "IN/model", "--out",
                                                       "IN/model/model.safetensors"), "error")
    for model in ("IN/nothing", "no-such-model", "IN/cut.onnx", "IN/text.png", "IN/stylize",
                  "IN/ir14.onnx", "IN/model/training.safetensors"):
        add("generate", f"--model {model}", g("--model", model, "--out", "x.png"), "error")
    add("generate", "--out through a symlink", g("--out", "link.png"), "ok", ["link.png", "target.png"],
        scenario="symlink")
    # a PNG is streamed (a band in memory): a TGA holds the 12 GiB image, which must fail in one line
    add("generate", "65536 x 65536 TGA (held in memory) under a 4 GiB memory limit",
        ["generate", *onnx_cpu, "--size", "65536", "--out", "big.tga"], "error",
        limit_as=4 << 30)
    add("generate", "--window outside the texture", g("--size", "64", "--window", "60,0,8,8",
                                                      "--out", "x.png"), "error")
    add("generate", "--udim with 11 columns", g("--udim", "11x1", "--tile-size", "32", "--out",
                                                 "x.png"), "error")
    add("generate", "unknown option", g("--colour", "red", "--out", "x.png"), "error")

    # stylize ----------------------------------------------------------------------------
    s = lambda *a: ["stylize", "--model", "IN/stylize", "--content", "IN/content.png", *a]
    add("stylize", "a content photo", s("--out", "o.png"), "ok", ["o.png"])
    add("stylize", "--stroke-scale 2, 16-bit", s("--stroke-scale", "2", "--bits", "16", "--out", "o.png"), "ok", ["o.png"])
    for opt, val in (("--seed", "-1"), ("--seed", str(2 ** 63)), ("--stroke-scale", "nan"),
                     ("--stroke-scale", "0"), ("--stroke-scale", "5"), ("--stroke-scale", "-1"),
                     ("--tile", "0")):
        add("stylize", f"{opt} {val}", s(opt, val, "--out", "o.png"), "error")
    add("stylize", "a texture model", ["stylize", "--model", "IN/model", "--content",
                                       "IN/content.png", "--out", "o.png"], "error")
    add("stylize", "--out the content photo", s("--out", "IN/content.png"), "error")
    for content in ("IN/trunc.png", "IN/text.png", "IN/tiny.png", "IN/nothing.png", "IN/bomb16.png"):
        add("stylize", f"--content {content}", ["stylize", "--model", "IN/stylize", "--content",
                                                content, "--out", "o.png"], "error",
            max_rss_mb=BOMB_RSS if "bomb" in content else None)

    # train ------------------------------------------------------------------------------
    t = lambda *a: ["train", "IN/s.png", "--out", "m", "--iters", "2", "--patch", "32",
                    "--batch", "2", *a]
    model_files = ["m", "m/model.safetensors", "m/training.safetensors", "m/exemplar.png",
                   "m/preview.png"]
    add("train", "2 iterations", t(), "ok", model_files)
    add("train", "sgan", t("--method", "sgan"), "ok", model_files)
    for opt, val in (("--seed", "-1"), ("--seed", str(2 ** 63)), ("--seed", str(2 ** 64)),
                     ("--lr", "nan"), ("--lr", "-0.001"), ("--lr", "inf"), ("--lr", "0"),
                     ("--descriptor-weight", "-1"), ("--descriptor-weight", "nan")):
        add("train", f"{opt} {val}", t(opt, val), "error")
    for opt, val in (("--iters", "0"), ("--iters", "-1"), ("--patch", "0"), ("--patch", "40"),
                     ("--patch", "96"), ("--batch", "0"), ("--batch", "-2"), ("--patch", "-32")):
        args = ["train", "IN/s.png", "--out", "m", opt, val] + [
            x for k, v in (("--iters", "2"), ("--patch", "32"), ("--batch", "2")) if k != opt
            for x in (k, v)]
        add("train", f"{opt} {val}", args, "error")
    add("train", "--style-scale for psgan (ignored before?)", t("--style-scale", "2"), "error")
    add("train", "--maps for texnet", ["train", "--method", "texnet", "IN/s.png", "--out", "m",
                                       "--maps", "normal=IN/s.png"], "error")
    add("train", "--style-scale 0 (texnet)", ["train", "--method", "texnet", "IN/s.png", "--out",
                                              "m", "--style-scale", "0"], "error")
    add("train", "--diversity nan (texnet)", ["train", "--method", "texnet", "IN/s.png", "--out",
                                              "m", "--diversity", "nan"], "error")
    add("train", "stylize with IMAGES", ["train", "--method", "stylize", "IN/s.png", "--out", "m"], "error")
    for img in ("IN/tiny.png", "IN/trunc.png", "IN/text.png", "IN/nothing.png", "IN/bomb16.png"):
        add("train", f"on {img}", ["train", img, "--out", "m", "--iters", "2", "--patch", "32"], "error",
            max_rss_mb=BOMB_RSS if "bomb" in img else None)
    add("train", "--out an existing model (no --force)", ["train", "IN/s.png", "--out", "IN/model",
                                                         "--iters", "2"], "error")
    add("train", "--out a file", t("--out", "IN/notes.txt"), "error")
    add("train", "--out inside a file", ["train", "IN/s.png", "--out", "IN/notes.txt/m"], "error")
    add("train", "--resume with nothing to resume", t("--resume"), "error")
    r = lambda *a: ["train", "--out", "m", "--resume", *a]
    resumed = dict(scenario="copy_model")
    add("train", "--resume, 2 more iterations", r("IN/s.png", "--iters", "4"), "ok",
        ["m/model.safetensors"], **resumed)
    add("train", "--resume with the same pixels under another name", r("IN/s_copy.png", "--iters", "4"),
        "ok", ["m/model.safetensors"], **resumed)
    add("train", "--resume with another image", r("IN/other.png", "--iters", "4"), "error", **resumed)
    add("train", "--resume with another preset", r("IN/s.png", "--iters", "4", "--preset", "full"), "error", **resumed)
    add("train", "--resume with another --batch", r("IN/s.png", "--iters", "4", "--batch", "4"), "error", **resumed)
    add("train", "--resume with another --patch", r("IN/s.png", "--iters", "4", "--patch", "64"), "error", **resumed)
    add("train", "--resume with another --licence", r("IN/s.png", "--iters", "4", "--licence", "GPL"), "error", **resumed)
    add("train", "--resume as texnet", r("IN/s.png", "--iters", "4", "--method", "texnet"), "error", **resumed)
    add("train", "--resume to an iteration already reached", r("IN/s.png", "--iters", "2"), "error", **resumed)
    add("train", "--resume a stylize model as psgan", ["train", "IN/s.png", "--out", "m", "--resume",
                                                       "--method", "psgan", "--iters", "4"], "error",
        scenario="copy_stylize")
    add("train", "a read-only --out", ["train", "IN/s.png", "--out", "RO/m", "--iters", "2"], "error",
        scenario="read_only")
    add("train", "two Ctrl-Cs, the second during the save", ["train", "IN/photo.png", "--out", "m",
                                                             "--iters", "100000", "--patch", "64",
                                                             "--batch", "2"],
        "interrupted", ["m", "m/model.safetensors", "m/training.safetensors", "m/exemplar.png",
                        "m/preview.png"], scenario="double_ctrl_c")

    # synth ------------------------------------------------------------------------------
    add("synth", "a 32 px Gatys texture", ["synth", "IN/s.png", "--size", "32", "--iters", "2",
                                           "--out", "g.png"], "ok", ["g.png"])
    for opt, val in (("--seed", "-1"), ("--lr", "nan"), ("--iters", "0"), ("--size", "16"),
                     ("--style-scale", "0"), ("--optimizer", "sgd")):
        add("synth", f"{opt} {val}", ["synth", "IN/s.png", "--size", "32", "--iters", "2", opt, val,
                                      "--out", "g.png"], "error")
    add("synth", "--out the input photo", ["synth", "IN/s.png", "--iters", "1", "--out", "IN/s.png"], "error")

    # export -----------------------------------------------------------------------------
    add("export", "a model folder", ["export", "IN/model", "--out", "m.onnx"], "ok", ["m.onnx"])
    add("export", "the built-in model, fp16", ["export", "bricks", "--fp16", "--out", "b.onnx"], "ok", ["b.onnx"])
    add("export", "--out the model's own model.safetensors", ["export", "IN/model", "--out",
                                                              "IN/model/model.safetensors"], "error")
    add("export", "--out x.png", ["export", "IN/model", "--out", "x.png"], "error")
    add("export", "--out an existing .onnx (no --force)", ["export", "IN/model", "--out", "IN/model.onnx"], "error")
    add("export", "an .onnx as the model", ["export", "IN/model.onnx", "--out", "m.onnx"], "error")
    add("export", "a missing model", ["export", "IN/nothing", "--out", "m.onnx"], "error")
    add("export", "a read-only --out", ["export", "IN/model", "--out", "RO/m.onnx"], "error",
        scenario="read_only")

    # export-set -------------------------------------------------------------------------
    e = lambda *a: ["export-set", "--model", "IN/model.onnx", "--size", "64", "--seeds", "1-2",
                    "--format", "png8", "--out", "lib", *a]
    set_files = ["lib", "lib/contact_sheet.png", "lib/model_0001", "lib/model_0002"]
    add("export-set", "two sets", e(), "ok", set_files)
    add("export-set", "two sets, exr, ambientcg", e("--format", "exr", "--naming", "ambientcg"), "ok", set_files)
    for opt, val in (("--maps", ""), ("--maps", "gloss"), ("--jobs", "0"), ("--jobs", "-1"),
                     ("--seeds", ""), ("--seeds", "5-1"), ("--seeds", "-1"), ("--seeds", "a"),
                     ("--size", "8"), ("--name", ""), ("--name", "a/b"), ("--name", ".."),
                     ("--tile", "0"), ("--roughness-base", "2"), ("--normal-strength", "nan")):
        add("export-set", f"{opt} {val!r}", e(opt, val), "error")
    add("export-set", "a model folder, not .onnx", ["export-set", "--model", "IN/model", "--out", "lib"], "error")
    add("export-set", "a damaged manifest (settings not an object)",
        ["export-set", "--model", "IN/model.onnx", "--seeds", "1", "--size", "64", "--format",
         "png8", "--out", "lib"], "error", scenario="damaged_library")
    add("export-set", "--out a file", e("--out", "IN/notes.txt"), "error")
    add("export-set", "a read-only --out", e("--out", "RO/lib"), "error", scenario="read_only")
    add("export-set", "kill -9 while the contact sheet is written, then two reruns",
        ["export-set", "--model", "IN/model.onnx", "--seeds", "1-120", "--size", "16",
         "--maps", "color", "--format", "png8", "--out", "lib"], "ok", ["lib"],
        scenario="kill_and_rerun")
    add("export-set", "kill -9 of --jobs 2: do its workers stop?",
        ["export-set", "--model", "IN/model.onnx", "--seeds", "1-30", "--size", "1024",
         "--jobs", "2", "--out", "lib"], "killed", scenario="kill_workers")

    # info, models, eval ------------------------------------------------------------------
    add("info", "a model folder", ["info", "IN/model"], "ok")
    add("info", "the ONNX export (the file the README makes)", ["info", "IN/model.onnx"], "ok")
    add("info", "the built-in model", ["info", "bricks"], "ok")
    for model in ("IN/ir14.onnx", "IN/cut.onnx", "IN/text.png", "IN/nothing", "IN/s.png"):
        add("info", model, ["info", model], "error")
    add("models", "list", ["models"], "ok")
    add("eval", "--image", ["eval", "--image", "IN/s.png"], "ok")
    add("eval", "--image with --report", ["eval", "--image", "IN/s.png", "--report", "r"], "ok",
        ["r", "r/metrics.json", "r/repeat_2x2.png"])
    add("eval", "--image a 16-bit PNG bomb (2 MB claiming 64x64)", ["eval", "--image", "IN/bomb16.png"],
        "error", max_rss_mb=BOMB_RSS)
    add("eval", "--image a truncated PNG", ["eval", "--image", "IN/trunc.png"], "error")
    add("eval", "--image a folder", ["eval", "--image", "IN/dir.png"], "error")
    add("eval", "a model report", ["eval", *onnx_cpu, "--exemplar", "IN/photo.png", "--report",
                                   "r", "--seeds", "1", "--size", "64"], "ok",
        ["r", "r/index.html", "r/metrics.json", "r/exemplar.png", "r/sample_seed1.png",
         "r/repeat_2x2.png", "r/morph.png"])
    add("eval", "an exemplar under 128 px", ["eval", *onnx_cpu, "--exemplar", "IN/s.png",
                                             "--report", "r", "--size", "64"], "error")
    add("eval", "--report without --exemplar", ["eval", *onnx_cpu, "--report", "r"], "error")
    add("eval", "--size 10", ["eval", *onnx_cpu, "--exemplar", "IN/photo.png", "--report", "r",
                              "--size", "10"], "error")
    add("eval", "--seeds x", ["eval", *onnx_cpu, "--exemplar", "IN/photo.png", "--report", "r",
                              "--seeds", "x"], "error")
    add("eval", "a read-only --report", ["eval", *onnx_cpu, "--exemplar", "IN/photo.png",
                                         "--report", "RO/r"], "error", scenario="read_only")
    add("(none)", "no command", [], "ok")
    add("(none)", "an unknown command", ["paint"], "error")
    return out


# ----------------------------------------------------------------------------- running

def launch(args, cwd: Path, env, limit_as=None) -> subprocess.Popen:
    """texgen ARGS in cwd, its output in files beside cwd; limit_as: an address-space limit
    (prlimit execs the command, so the PID is texgen's)."""
    limit = ["prlimit", f"--as={limit_as}"] if limit_as else []
    return subprocess.Popen([*limit, *TEXGEN, *args], cwd=cwd, env=env,
                            stdout=open(cwd.parent / f"{cwd.name}.out", "w"),
                            stderr=open(cwd.parent / f"{cwd.name}.err", "w"),
                            start_new_session=True)


def finish(p: subprocess.Popen, timeout: float) -> tuple[int | None, float]:
    """Wait for p (killing it after timeout): (exit code, peak RSS in MB)."""
    deadline = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, usage.ru_maxrss / 1024
        if time.time() > deadline:
            os.killpg(p.pid, signal.SIGKILL)
            _, status, usage = os.wait4(p.pid, 0)
            return None, usage.ru_maxrss / 1024
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d))
    return kids


def alive(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def wait_for(cond, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def read_only(folder: Path):
    """A read-only file system at folder (root: a tmpfs mounted ro), else a folder without
    write permission."""
    folder.mkdir()
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                                             str(folder)], capture_output=True).returncode == 0:
        try:
            yield
        finally:
            subprocess.run(["umount", str(folder)], capture_output=True)
        return
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)


def run_case(case: Case, work: Path, inputs: Path, src: Path, n: int) -> Result:
    cwd = work / f"case{n:03d}"
    cwd.mkdir()
    env = dict(os.environ, PYTHONPATH=str(src), COLUMNS="100")
    env.pop("TEXGEN_DEBUG", None)
    args = [a.replace("IN/", f"{inputs}/").replace("RO/", f"{cwd}/ro/") for a in case.args]
    notes = []
    with contextlib.ExitStack() as stack:
        if case.scenario == "symlink":
            (cwd / "target.png").write_bytes(b"old")
            (cwd / "link.png").symlink_to("target.png")
        elif case.scenario in ("copy_model", "copy_stylize"):
            shutil.copytree(inputs / ("model" if case.scenario == "copy_model" else "stylize"), cwd / "m")
        elif case.scenario == "damaged_library":
            shutil.copytree(inputs / "damaged_library", cwd / "lib")
        elif case.scenario == "read_only":
            stack.enter_context(read_only(cwd / "ro"))
        before = listing(cwd)
        t0 = time.perf_counter()
        p = launch(args, cwd, env, case.limit_as)
        if case.scenario == "double_ctrl_c":
            seen = wait_for(lambda: (cwd / "m" / "exemplar.png").exists(), 120)
            time.sleep(4.0 if seen else 0)                  # some iterations in
            os.killpg(p.pid, signal.SIGINT)
            # the second Ctrl-C as soon as the checkpoint's first file is being written
            saving = lambda: any(n.startswith(".training.safetensors.")
                                 for n in os.listdir(cwd / "m"))
            deadline = time.time() + 60
            while time.time() < deadline and p.poll() is None and not saving():
                time.sleep(0.002)
            os.killpg(p.pid, signal.SIGINT)
        elif case.scenario == "kill_and_rerun":          # kill -9 while the sheet is written
            lib, deadline = cwd / "lib", time.time() + 120
            while time.time() < deadline and p.poll() is None and not any(
                    n.startswith(".contact_sheet") for n in (os.listdir(lib) if lib.is_dir() else [])):
                time.sleep(0.002)
            p.kill()
        elif case.scenario == "kill_workers":
            wait_for(lambda: any(".tmp" in f or f.endswith(".png") for f in listing(cwd)), 120)
            time.sleep(0.5)
            workers = [k for k in children(p.pid) if "spawn_main" in
                       Path(f"/proc/{k}/cmdline").read_text(errors="replace")]
            p.kill()
        rc, rss = finish(p, case.timeout)
        seconds = time.perf_counter() - t0
        err = (cwd.parent / f"{cwd.name}.err").read_text(errors="replace")
        out = (cwd.parent / f"{cwd.name}.out").read_text(errors="replace")
        if case.scenario == "kill_workers":
            gone = wait_for(lambda: not any(alive(w) for w in workers), 10)
            left = [w for w in workers if alive(w)]
            for w in left:
                with contextlib.suppress(OSError):
                    os.kill(w, signal.SIGKILL)
            ok = bool(workers) and gone
            answer = (f"{len(workers)} workers; {'all stopped within 10 s of the kill' if gone else f'{len(left)} still painting 10 s after the parent died'}")
            return Result(rc, answer, ok, "" if ok else "workers outlived their parent", rss, seconds,
                          sorted(listing(cwd) - before))
        if case.scenario == "kill_and_rerun":
            temps = [f for f in listing(cwd) if ".tmp" in f]
            notes.append(f"after kill -9: {len(temps)} temp file(s)")
            for _ in range(2):
                p = launch(args, cwd, env)
                rc, rss2 = finish(p, case.timeout)
                rss = max(rss, rss2)
            err = (cwd.parent / f"{cwd.name}.err").read_text(errors="replace")
            out = (cwd.parent / f"{cwd.name}.out").read_text(errors="replace")
    files = sorted(listing(cwd) - before)
    short = lambda text: text.replace(f"{inputs}/", "IN/").replace(f"{cwd}/", "")
    res = judge(case, rc, short(out), short(err), files, cwd)
    if case.max_rss_mb and rss > case.max_rss_mb and res.ok:
        res.ok, res.why = False, f"took {rss:.0f} MB to answer (at most {case.max_rss_mb})"
    if case.scenario == "symlink":
        kept_link = (cwd / "link.png").is_symlink() and (cwd / "target.png").read_bytes() != b"old"
        notes.append("the link still points at the new image" if kept_link else
                     "the link was replaced by a file" if not (cwd / "link.png").is_symlink()
                     else "the target was not written")
        if rc == 0 and not kept_link:
            res.ok, res.why = False, "the symlink was replaced"
    res.rss_mb, res.seconds = rss, seconds
    if case.scenario == "double_ctrl_c" and rc == 130:
        said = re.findall(r"(?:saving iteration|iteration) (\d+)", out + err)   # (log: stdout)
        it_model = _iteration(cwd / "m" / "model.safetensors")
        it_train = _iteration(cwd / "m" / "training.safetensors")
        notes.append(f"said {said[-1] if said else '?'}; model.safetensors at {it_model}, "
                     f"training.safetensors at {it_train}")
        if not (said and it_model == it_train == int(said[-1])):
            res.ok, res.why = False, "checkpoint torn: the files disagree with each other or the message"
    if notes:
        res.answer += " (" + "; ".join(notes) + ")"
    return res


def _iteration(path: Path):
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            return json.loads(f.metadata()["iteration"])
    except Exception as e:
        return f"unreadable ({type(e).__name__})"


def listing(folder: Path) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if not p.relative_to(folder).as_posix().startswith("ro")}


def judge(case: Case, rc, out: str, err: str, files: list, cwd: Path) -> Result:
    lines = [l.strip() for l in re.split(r"[\r\n]+", err) if l.strip()]
    last = lines[-1] if lines else ""
    errors = [l for l in lines if "error:" in l]
    litter = [f for f in files if ".tmp" in f or Path(f).name.startswith(".")]
    if rc is None:
        return Result(rc, "timed out", False, "no answer within the time limit", files=files)
    if "Traceback" in err or "Traceback" in out:
        exc = next((l for l in reversed(lines) if re.match(r"\w+(\.\w+)*(Error|Exception|Interrupt)\b", l)), last)
        return Result(rc, f"exit {rc}: TRACEBACK ({len(err.splitlines())} lines) ending {exc[:160]}",
                      False, "traceback", files=files)
    if rc == 0:
        answer = "exit 0" + (f"; said: {' / '.join(l for l in lines if l.startswith('note:'))[:200]}"
                             if any(l.startswith("note:") for l in lines) else "")
        missing = [o for o in case.outputs if not (cwd / o).exists()]
        extra = [f for f in files if not any(f == o or f.startswith(o + "/") for o in case.outputs)]
        why = ("expected a refusal" if case.expect == "error" else
               f"missing {missing}" if missing else f"left {extra + litter}" if extra or litter
               else "")
        return Result(rc, answer, not why, why, files=files)
    if rc == 130:
        ok = case.expect == "interrupted" and not litter
        return Result(rc, f"exit 130: {last[:200]}", ok,
                      "" if ok else f"left {litter}" if litter else "unexpected interrupt", files=files)
    one_line = rc == 1 and len(errors) == 1 and last.startswith("error:")
    bug = "texgen bug" in last
    why = ("not one 'error:' line with exit 1" if not one_line else
           "an internal error (named as a bug)" if bug else
           "expected success" if case.expect == "ok" else
           f"left {files}" if files else "")
    return Result(rc, f"exit {rc}: {last[:240]}", not why, why, files=files)


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", help="also run every case on this commit (git archive)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", help="run the cases whose command or description match (debug)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    t0 = time.time()
    all_cases = [c for c in cases() if not a.only or re.search(a.only, f"{c.command} {c.what}")]
    with tempfile.TemporaryDirectory(prefix="texgen_robustness_") as tmp:
        tmp = Path(tmp)
        versions = {"now": ROOT}
        if a.before:
            old = tmp / "before_src"
            old.mkdir()
            data = subprocess.run(["git", "-C", str(ROOT), "archive", a.before], check=True,
                                  capture_output=True).stdout
            with tarfile.open(fileobj=__import__("io").BytesIO(data)) as tf:
                tf.extractall(old)
            versions = {a.before: old, "now": ROOT}
        results = {}
        make_inputs(tmp / "inputs", ROOT)   # made once, by this checkout; a copy per version
        for name, src in versions.items():  # (an old version's case may overwrite an input)
            inputs = tmp / name / "inputs"
            shutil.copytree(tmp / "inputs", inputs, symlinks=True)
            work = tmp / name / "cases"
            work.mkdir()
            with ThreadPoolExecutor(a.jobs) as pool:
                results[name] = list(pool.map(lambda ic: run_case(ic[1], work, inputs, src, ic[0]),
                                              enumerate(all_cases)))
            print(f"{name}: {sum(r.ok for r in results[name])}/{len(all_cases)} cases kept their promise",
                  flush=True)
    write(Path(a.out), all_cases, results, time.time() - t0, a)


def write(path: Path, all_cases: list, results: dict, seconds: float, a) -> None:
    import platform
    names = list(results)
    now = results["now"]
    lines = ["# Robustness: what texgen answers to what users type", "",
             f"Made by `python benchmarks/robustness.py{' --before ' + a.before if a.before else ''}`"
             f" ({len(all_cases)} cases, {seconds / 60:.1f} min, {platform.machine()}, "
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}). Each case is one "
             f"`texgen ...` process in a fresh folder (IN/: the inputs it reads); **kept** means "
             f"its promise held: exit "
             f"0 doing what was asked, or exit 1 with one `error:` line last on stderr, as the case "
             f"expects; no traceback; nothing left but the intended outputs. RSS: the process's "
             f"peak memory.", ""]
    lines += ["## Summary", "", "| command | cases | " + " | ".join(f"kept ({n})" for n in names)
              + " | " + " | ".join(f"tracebacks ({n})" for n in names) + " |",
              "|---|---|" + "---|" * (2 * len(names))]
    groups = list(dict.fromkeys(c.command for c in all_cases))
    for g in groups + ["all"]:
        idx = [i for i, c in enumerate(all_cases) if g in ("all", c.command)]
        kept = [sum(results[n][i].ok for i in idx) for n in names]
        tb = [sum("TRACEBACK" in results[n][i].answer for i in idx) for n in names]
        lines.append(f"| {'**all**' if g == 'all' else g} | {len(idx)} | "
                     + " | ".join(map(str, kept)) + " | " + " | ".join(map(str, tb)) + " |")
    for g in groups:
        lines += ["", f"## {g}", "", "| case | command | expected | "
                  + " | ".join(f"answer ({n})" for n in names) + " | kept (now) | "
                  + " | ".join(f"peak RSS MB, s ({n})" for n in names) + " |",
                  "|---|---|---|" + "---|" * len(names) + "---|" + "---|" * len(names)]
        for i, c in enumerate(all_cases):
            if c.command != g:
                continue
            cmd = " ".join(_quote(x) for x in c.args)
            answers = []
            for n in names:
                r = results[n][i]
                mark = "" if r.ok else f" **✗ {r.why}**"
                answers.append(_cell(r.answer) + mark)
            r = now[i]
            lines.append(f"| {_cell(c.what)} | `{_cell(cmd)[:150]}` | {c.expect} | "
                         + " | ".join(answers) + f" | {'yes' if r.ok else '**no**'} | "
                         + " | ".join(f"{results[n][i].rss_mb:.0f}, {results[n][i].seconds:.1f}"
                                      for n in names) + " |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def _quote(x: str) -> str:
    return x if x and re.fullmatch(r"[\w./,=:+@-]+", x) else repr(x)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    main()
