"""Painting speed: torch eager vs onnxruntime CPU, side by side in one run.

    python benchmarks/runtime_speed.py [--quick] [--tile 64]

Writes benchmarks/out/runtime_speed.md (and prints it). For randomly initialised generators of
the default PSGAN size and of the `fast` preset: Mpx/s of torch eager (texgen.paint.torch_runner
through runtime.canvas.synthesize) and of onnxruntime on the CPU (runtime.onnx_painter.OnnxPainter)
at 512 .. 8192 px square, tiled as `texgen generate` tiles (--tile cells); the model's FLOPs
per output pixel counted from its conv shapes, the achieved GFLOP/s as a fraction of a numpy
float32 GEMM peak measured in the same run; the peak resident memory of the real
`texgen generate --model X.onnx --size 8192x8192` in a subprocess; and a tile-size sweep.
--quick: 512 and 1024 only (and the memory check at 1024).
Random weights paint the same amount of work as trained ones: speed does not depend on values.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from texgen.export.onnx_export import export_onnx
from texgen import checkpoint
from texgen.train.batchnorm import calibrate_batchnorm
from texgen.models.psgan import Generator, PSGANConfig
from texgen.paint import torch_runner
from texgen.runtime.canvas import synthesize
from texgen.runtime.onnx_painter import OnnxPainter
from texgen.runtime.tiling import DEFAULT_TILE
from texgen.train.psgan import PRESETS

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="512 and 1024 px only")
ap.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile edge in cells (texgen generate's default)")
ap.add_argument("--torch-max", type=int, default=4096, help="largest side painted with torch eager")
ap.add_argument("--out", default="benchmarks/out/runtime_speed.md")
args = ap.parse_args()

SIZES = [512, 1024] if args.quick else [512, 1024, 4096, 8192]
MEM_SIZE = 1024 if args.quick else 8192
MODELS = {"default (512-256-128-64)": PSGANConfig(), "fast (256-128-64-32)": PRESETS["fast"][0]}


def flops_per_pixel(cfg: PSGANConfig) -> float:
    """Multiply-adds x 2 per final output pixel: a stride-2 k x k transposed conv costs
    2*cin*cout*k*k/4 per pixel of its own output, which has (2**(i+1) / scale)**2 of the final
    pixels per final pixel for layer i. The wave MLP (per cell) and sin/cos are negligible."""
    widths = [cfg.layout.channels + cfg.n_periodic, *cfg.g_widths, cfg.channels]
    total = 0.0
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        total += 2 * cin * cout * cfg.kernel ** 2 / 4 * (2 ** (i + 1) / cfg.scale) ** 2
    return total


def gemm_peak() -> float:
    """GFLOP/s of a numpy float32 2048x2048 matmul, best of 5."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 2048 ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def make_models(tmp: Path) -> dict:
    out = {}
    for k, (name, cfg) in enumerate(MODELS.items()):
        torch.manual_seed(k)
        G = Generator(cfg)
        calibrate_batchnorm(G, cells=4, batches=2, batch=2)
        folder = tmp / f"m{k}"
        checkpoint.save_model(folder, G.eval(), {"config": cfg.to_dict(),
                                                 "provenance": {"method": "psgan", "licence": "CC0"}})
        export_onnx(folder, folder / "m.onnx")
        out[name] = (G, folder / "m.onnx")
    return out


def speed(paint, side: int) -> float:
    """Mpx/s painting a side x side canvas (best of 3 below 2048 px, else one run)."""
    reps = 3 if side < 2048 else 1
    return side * side / 1e6 / min(_timed(lambda: paint(side)) for _ in range(reps))


def peak_rss_of_cli(onnx_path: Path, side: int, tile: int, tmp: Path) -> tuple[float, float]:
    """(peak resident MiB, seconds) of `texgen generate --model X.onnx --size SxS` run alone."""
    texgen = Path(sys.executable).with_name("texgen")
    cmd = ([str(texgen)] if texgen.exists() else [sys.executable, "-m", "texgen.cli"])
    cmd += ["generate", "--model", str(onnx_path), "--size", f"{side}x{side}", "--device", "cpu",
            "--tile", str(tile), "--out", str(tmp / f"mem{side}.png")]
    # measured in a fresh interpreter, so this process's own (torch) memory does not count
    code = ("import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "assert r.returncode == 0, r.stdout + r.stderr\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True)
    secs = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(f"texgen generate failed:\n{r.stderr}")
    return int(r.stdout.split()[-1]) / 1024, secs       # ru_maxrss is KiB on Linux


def main():
    torch.set_grad_enabled(False)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import onnxruntime as ort
    peak = gemm_peak()
    lines = [f"# Runtime painting speed ({'quick' if args.quick else 'full'} run)", "",
             f"{cpu}, {os.cpu_count()} logical CPUs; torch {torch.__version__} "
             f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__} "
             f"(CPUExecutionProvider); tile {args.tile} cells, as `texgen generate`. "
             f"onnxruntime = OnnxPainter (the graph paints each tile's interior from its "
             f"context; CPU arena on, released after each canvas). "
             f"GEMM peak (numpy float32 2048x2048, best of 5): "
             f"**{peak:.0f} GFLOP/s**. Load average at start: "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (other jobs on the machine "
             f"slow every number here).", "",
             "| model | GFLOP / Mpx | backend | " + " | ".join(f"{s} px" for s in SIZES)
             + " | best GFLOP/s | % of GEMM peak |",
             "|---|---|---|" + "---|" * len(SIZES) + "---|---|"]
    notes, sweep = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = make_models(tmp)
        for name, (G, onnx_path) in models.items():
            cfg = G.cfg
            fpp = flops_per_pixel(cfg)
            painter = OnnxPainter(onnx_path, device="cpu")
            trun = torch_runner(G)
            backends = {
                "torch eager": lambda s: synthesize(trun, cfg.layout, cfg.scale, G.margin, s, s,
                                                    tile=args.tile),
                "onnxruntime": lambda s: painter.paint(s, s, tile=args.tile),
            }
            for backend, paint in backends.items():
                paint(256)                                    # warm-up
                cells, rates = [], []
                for side in SIZES:
                    if backend == "torch eager" and side > args.torch_max:
                        cells.append("—")
                        continue
                    mpx = speed(paint, side)
                    rates.append(mpx)
                    cells.append(f"{mpx:.2f}")
                    print(f"{name} {backend} {side}: {mpx:.2f} Mpx/s", flush=True)
                gflops = max(rates) * fpp / 1e3
                lines.append(f"| {name} | {fpp / 1e3:.1f} | {backend} | " + " | ".join(cells)
                             + f" | {gflops:.1f} | {100 * gflops / peak:.0f} % |")
            # tile-size sweep for onnxruntime (memory vs margin overhead vs per-call cost)
            side = 1024 if args.quick else 4096
            for tile in ((8, 16, 32) if args.quick else (12, 16, 24, 32, 48)):
                if tile * cfg.scale > side:
                    continue
                mpx = speed(lambda s: painter.paint(s, s, tile=tile), side)
                sweep.append(f"| {name} | {side} px | {tile or 'one shot'} | {mpx:.2f} |")
                print(f"sweep {name} tile {tile}: {mpx:.2f} Mpx/s", flush=True)
        onnx_default = next(iter(models.values()))[1]
        del models
        mib, secs = peak_rss_of_cli(onnx_default, MEM_SIZE, args.tile, tmp)
        print(f"peak RSS {MEM_SIZE}: {mib:.0f} MiB in {secs:.0f} s", flush=True)
    lines += ["", "Mpx/s = output megapixels per second, whole canvas (noise, tiles with their "
              f"{'margin'} of context, stitching), best of 3 below 2048 px, one run above. "
              "GFLOP/s counts only the transposed convolutions (analytic, from the conv shapes)."]
    if args.torch_max < max(SIZES):
        lines.append(f"torch eager is not run above {args.torch_max} px: an 8192 px canvas is "
                     f"4x the 4096 px work at the same rate and would take too long here.")
    lines += ["", "## onnxruntime tile size", "",
              "| model | canvas | tile (cells) | Mpx/s |", "|---|---|---|---|", *sweep,
              "", "## Peak memory", "",
              f"`texgen generate --model <default>.onnx --size {MEM_SIZE}x{MEM_SIZE} --tile "
              f"{args.tile} --device cpu` in a subprocess: peak resident **{mib:.0f} MiB** "
              f"({mib / 1024:.2f} GiB), {secs:.0f} s including start-up and PNG encoding.", *notes]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
