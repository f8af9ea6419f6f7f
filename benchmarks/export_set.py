"""Texture-set export: throughput on the CPU, and how seamless the derived maps are.

    python benchmarks/export_set.py            # about 3 minutes on 2 cores

Exports the built-in `bricks` model to ONNX (what `texgen export bricks --out X.onnx` does),
then times `texgen export-set` (runtime/texture_set.export_library): all five maps, 16-bit
PNG, at 2048 and 4096 px, with 1 and 2 jobs, plus where one set's time goes (paint, derive,
encode). Then the seam score (eval/metrics.seam_score) of every map of a few sets beside its
colour map: a derived map is as seamless as its colour when the ratio is about 1. A single
seam line varies with content, so each score is shown with the wrap's rank among all lines,
and a crop of a bigger torus (not tileable) shows what a seam scores.
Writes benchmarks/out/export_set.md.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from texgen.export.onnx_export import export_onnx
from texgen.builtin import builtin_path
from texgen.eval.metrics import seam_score
from texgen.runtime.maps import MAP_NAMES, material_maps
from texgen.runtime.onnx_painter import OnnxPainter
from texgen.runtime.texture_set import SetSpec, export_library, write_map

OUT = Path(__file__).parent / "out" / "export_set.md"
RUNS = [(2048, 1, 3), (2048, 2, 2), (4096, 1, 2), (4096, 2, 2)]     # size, jobs, sets
SEAM_SEEDS, SEAM_SIZE = tuple(range(1, 9)), 1024


def throughput(model: Path, work: Path) -> list[str]:
    rows = ["| size | jobs | sets | wall s | s / set | **sets / min** |", "|---|---|---|---|---|---|"]
    for size, jobs, n in RUNS:
        out = work / f"lib_{size}_{jobs}"
        t = time.perf_counter()
        export_library(model, range(1, n + 1), out, SetSpec(width=size, height=size,
                                                            format="png16"), jobs=jobs)
        dt = time.perf_counter() - t
        rows.append(f"| {size} | {jobs} | {n} | {dt:.1f} | {dt / n:.1f} | **{60 * n / dt:.2f}** |")
        print(rows[-1], flush=True)
        shutil.rmtree(out)
    return rows


def phases(model: Path, work: Path) -> list[str]:
    """Where one set's time goes, jobs 1 (the encode step runs the five maps on 2 threads in
    export_set; here they run one after another, so it is the CPU time of encoding)."""
    p = OnnxPainter(model, device="cpu")
    rows = ["| size | paint s | derive 4 maps s | encode 5 png16 s |", "|---|---|---|---|"]
    for size in (2048, 4096):
        t0 = time.perf_counter()
        img = p.paint(size, size, seed=9)
        t1 = time.perf_counter()
        maps = material_maps(img, p.maps, MAP_NAMES)
        t2 = time.perf_counter()
        for name, pixels in maps.items():
            write_map(work / f"{name}.png", pixels, name, "png16")
        t3 = time.perf_counter()
        rows.append(f"| {size} | {t1 - t0:.1f} | {t2 - t1:.1f} | {t3 - t2:.1f} |")
        print(rows[-1], flush=True)
    return rows


def wrap_rank(img: np.ndarray) -> float:
    """Where the wrap seam ranks among all the canvas' lines (rows and columns): the fraction
    of neighbouring-line pairs whose mean step is smaller than the step across the wrap,
    averaged over both axes. About 0.5 when the wrap is like any other line; near 1 for a seam.
    Robust where one line's score is not: a mortar line may run along the wrap."""
    a = np.asarray(img, np.float64)
    a = a[..., None] if a.ndim == 2 else a
    ranks = []
    for axis in (0, 1):
        steps = np.abs(np.roll(a, -1, axis=axis) - a).mean(axis=tuple(i for i in range(3) if i != axis))
        ranks.append(float((steps[:-1] < steps[-1]).mean()))        # steps[-1]: last -> first
    return float(np.mean(ranks))


def seams(model: Path) -> list[str]:
    p = OnnxPainter(model, device="cpu")
    keys = ("wrap", "rank", "crop", "crop_rank")
    scores = {k: {m: [] for m in MAP_NAMES} for k in keys}
    for seed in SEAM_SEEDS:
        tiled = material_maps(p.paint(SEAM_SIZE, SEAM_SIZE, seed=seed), p.maps, MAP_NAMES)
        # not tileable: the maps of a crop of a 25 % bigger torus (as generate --no-tileable)
        big = p.paint(SEAM_SIZE * 5 // 4, SEAM_SIZE * 5 // 4, seed=seed)
        crop = material_maps(np.ascontiguousarray(big[:, :SEAM_SIZE, :SEAM_SIZE]), p.maps,
                             MAP_NAMES)
        for m in MAP_NAMES:
            scores["wrap"][m].append(seam_score(tiled[m]))
            scores["rank"][m].append(wrap_rank(tiled[m]))
            scores["crop"][m].append(seam_score(crop[m]))
            scores["crop_rank"][m].append(wrap_rank(crop[m]))
    mean = {k: {m: float(np.mean(v)) for m, v in d.items()} for k, d in scores.items()}
    rows = [f"| map | seam score (mean / max of {len(SEAM_SEEDS)} sets) | ratio to colour "
            "| wrap rank among all lines | not tileable (control): seam score | its wrap rank |",
            "|---|---|---|---|---|---|"]
    for m in MAP_NAMES:
        ratio = mean["wrap"][m] / mean["wrap"]["color"]
        rows.append(f"| {m} | {mean['wrap'][m]:.3f} / {max(scores['wrap'][m]):.3f} | "
                    f"**{ratio:.2f}** | {mean['rank'][m]:.2f} | {mean['crop'][m]:.3f} | "
                    f"{mean['crop_rank'][m]:.2f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="texgen_bench_"))
    try:
        model = work / "bricks.onnx"
        export_onnx(builtin_path("bricks"), model)
        t = time.perf_counter()
        rows_t = throughput(model, work)
        rows_p = phases(model, work)
        rows_s = seams(model)
        total = time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join([
        "# Texture-set export (`texgen export-set`)", "",
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"onnxruntime {onnxruntime.__version__} (CPU); 1-minute load average {load[0]:.1f} at "
        f"the start, {os.getloadavg()[0]:.1f} at the end (other jobs share this machine and "
        "slow every number here). Model: "
        "the built-in `bricks` (fast preset) exported to ONNX fp32. Each set: color + "
        "normal + height + roughness + ao, 16-bit PNG (polyhaven names), manifest with SHA-256 "
        "of every file, a preview; one contact sheet per run. Benchmark time "
        f"{total / 60:.1f} min.", "",
        "## Throughput", "", *rows_t, "",
        "jobs 2: two processes, each painting with cores / 2 threads.", "",
        "### One set, step by step (jobs 1, seed 9)", "", *rows_p, "",
        "## Seams of the derived maps", "",
        f"{SEAM_SIZE} px sets, seeds {SEAM_SEEDS[0]}-{SEAM_SEEDS[-1]}. Seam score 1.0: the wrap "
        "seam is like any pair of neighbouring pixels. One line's score varies with content (a "
        "mortar line may run along the wrap; normals, a derivative, vary most), so the wrap "
        "rank says where the wrap's step ranks among all rows and columns of the same map: 0.5 "
        "is an ordinary line, 1.0 the largest step in the image. The control paints a crop of a "
        "bigger torus, whose edges do not meet.", "", *rows_s, "",
    ])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":          # export_library's workers are spawned: they import this
    main()
