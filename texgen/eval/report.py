"""Score a model against its exemplar and write a one-page report (index.html + metrics.json).

    result = evaluate(painter, exemplar)           # numbers and the images they came from
    write_report("reports/brick", result)          # the page a person reads

The painter is anything with OnnxPainter's interface (painters.open_painter gives an ONNX or a
PyTorch one); the exemplar is the photo as (H, W, 3) floats in [0, 1].
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from texgen.errors import TexgenError
from texgen.eval import metrics as M
from texgen.files import atomic_write_bytes
from texgen.runtime.imageio import save_image
from texgen.runtime.maps import material_maps


@dataclass
class EvalConfig:
    seeds: tuple = (1, 2, 3, 4)         # one sample per seed
    size: int = 512                     # sample edge in px
    crop: int = 256                     # VGG crops (exemplar and samples) in px
    exemplar_crops: int = 8             # random crops of the exemplar for its own baseline
    crops_per_sample: int = 2
    cell: int = 32                      # px per noise cell, for cell_lattice and cell_contrast
                                        # (evaluate() sets the painter's)


# what each number means, in plain words, for the report's table
READINGS = {
    "texture_distance": "Gram-matrix distance of VGG-19 features (relu1_1..relu4_1), samples vs "
                        "exemplar; lower is better. Compare with the exemplar's own crops.",
    "histogram_distance": "How far the colours are from the photo's (earth mover's distance, "
                          "fraction of the value range); lower is better, < 0.03 is hard to see.",
    "spectrum_distance": "Difference of energy per scale (decades); lower is better. Blur or a "
                         "wrong grain size raise it.",
    "fine_energy": "Energy in the finest octave of detail (0.25-0.5 cycles/px), samples / "
                   "photo; 1 is right, above 1.2 is speckle or noise, below 0.8 is blur.",
    "checker_energy": "Energy beyond 0.5 cycles/px, in the spectrum's corners, samples / photo: "
                      "a 1-2 px checkerboard (halftone) shows as many times 1.",
    "chroma_energy": "Colour detail finer than 4 px (chroma, the colour less its brightness, "
                     "beyond 0.25 cycles/px), samples / photo: fine colour speckle shows as "
                     "many times 1, which fine_energy (brightness only) misses.",
    "seam_score": "Step across the wrap-around seams / ordinary neighbour steps; 1.0 tiles "
                  "invisibly, the photo itself shows what a visible seam scores.",
    "period_error": "Relative error of the samples' dominant periods vs the photo's; 0 is "
                    "exact. Meaningful for regular textures (bricks, tiles) only.",
    "cell_lattice": "Share of the variance in one motif repeated in every noise cell (a "
                    "fine woven lattice at the cell size); compare with the photo's own, near "
                    "1 is wallpaper of one motif.",
    "cell_contrast": "How much contrast and edges sit at the same places in every noise cell "
                     "(a grid of square blocks); compare with the photo's own, 0 is even.",
    "diversity": "Spread between seeds / spread between places of the photo; ~1 is healthy, "
                 "near 0 every seed paints the same (mode collapse).",
    "copy_score": "Fraction of the samples that is pasted photo; near 0 is healthy, high means "
                  "the model memorised its exemplar.",
}


@dataclass
class EvalResult:
    metrics: dict                       # metric name -> value for the model
    baseline: dict                      # the same measured on the exemplar itself, for scale
    images: dict = field(default_factory=dict)   # file name -> (H, W, 3) float [0, 1]
    info: dict = field(default_factory=dict)


def colour(painter, img: np.ndarray) -> np.ndarray:
    """A painter's output (C, H, W) in [-1, 1] -> its colour map (H, W, 3) in [0, 1]."""
    return material_maps(img, painter.maps, ["color"])["color"]


# the smallest exemplar side scored: copy_score's 16 px patches of a 4x shrunk photo, two
# patches wide (its self-reference halves); crops (2/3 of it) stay above VGG's 32 px
MIN_EXEMPLAR = 128


def check_exemplar(exemplar: np.ndarray) -> None:
    if min(exemplar.shape[:2]) < MIN_EXEMPLAR:
        raise TexgenError(f"the exemplar ({exemplar.shape[1]}x{exemplar.shape[0]}) is too small "
                          f"to evaluate against: at least {MIN_EXEMPLAR} px a side")


def evaluate(painter, exemplar: np.ndarray, cfg: EvalConfig = EvalConfig(), vgg=None,
             progress=None) -> EvalResult:
    """Paint one sample per seed in cfg.seeds and score them against `exemplar`."""
    check_exemplar(exemplar)                        # before the painting, not after
    cfg = replace(cfg, cell=round(painter.scale / painter.zoom))   # the cell in texture px
    samples = []
    for i, seed in enumerate(cfg.seeds):
        samples.append(colour(painter, painter.paint(cfg.size, cfg.size, seed=seed)))
        if progress:
            progress(i + 1, len(cfg.seeds) + 1)
    result = evaluate_samples(samples, exemplar, cfg, vgg)
    if painter.layout.n_global:                     # a manifold: morph seed A -> B and back
        a = cfg.seeds[0]
        b = cfg.seeds[1] if len(cfg.seeds) > 1 else a + 1
        strip = painter.paint(cfg.size * 3, cfg.size, seed=a, morph_seed=b)
        result.images["morph.png"] = colour(painter, strip)
    result.info.update(kind=painter.kind, maps=list(painter.maps))
    if progress:
        progress(len(cfg.seeds) + 1, len(cfg.seeds) + 1)
    return result


def _as_much_of(exemplar: np.ndarray, samples: list[np.ndarray], crop: int) -> list[np.ndarray]:
    """Random crops of the exemplar, as many as cover the samples' area."""
    size = min(crop, *exemplar.shape[:2])
    return M.random_crops(exemplar, size, max(1, sum(s.shape[0] * s.shape[1] for s in samples)
                                              // size ** 2), seed=0)


def with_crop(cfg: EvalConfig, sample_shape: tuple, exemplar: np.ndarray) -> EvalConfig:
    """cfg with its crop size fitted: crops must be smaller than the photo (2/3 of its short
    side), or every "random" crop is the same one."""
    return replace(cfg, crop=min(cfg.crop, *sample_shape, min(exemplar.shape[:2]) * 2 // 3))


def exemplar_crops(exemplar: np.ndarray, cfg: EvalConfig) -> list[np.ndarray]:
    return M.random_crops(exemplar, cfg.crop, cfg.exemplar_crops, seed=0)


def sample_crops(sample: np.ndarray, cfg: EvalConfig) -> list[np.ndarray]:
    """The same positions in every sample: diversity then compares seeds, not places."""
    return M.random_crops(sample, cfg.crop, cfg.crops_per_sample, seed=0)


def evaluate_samples(samples: list[np.ndarray], exemplar: np.ndarray,
                     cfg: EvalConfig = EvalConfig(), vgg=None) -> EvalResult:
    """Score generated images (H, W, 3) in [0, 1], one per seed, against `exemplar`; also
    the exemplar against itself as the scale each number is read on."""
    from texgen.models.vgg import VGG19
    check_exemplar(exemplar)
    cfg = with_crop(cfg, samples[0].shape[:2], exemplar)
    vgg = vgg or VGG19(last="relu4_1")
    ex_crops = exemplar_crops(exemplar, cfg)
    per_seed = [sample_crops(s, cfg) for s in samples]
    ex_grams = M.gram_matrices(vgg, ex_crops)           # VGG-19 once per crop
    seed_grams = [M.gram_matrices(vgg, crops) for crops in per_seed]
    half = len(ex_crops) // 2
    result = EvalResult(
        metrics={
            "texture_distance": M.texture_distance(ex_grams, [g for gs in seed_grams for g in gs]),
            "histogram_distance": float(np.mean([M.histogram_distance(s, exemplar) for s in samples])),
            "spectrum_distance": float(np.mean([M.spectrum_distance(s, exemplar) for s in samples])),
            "fine_energy": M.fine_energy(samples, exemplar),
            "checker_energy": M.checker_energy(samples, exemplar),
            "chroma_energy": M.chroma_energy(samples, exemplar),
            "seam_score": float(np.mean([M.seam_score(s) for s in samples])),
            "period_error": M.period_error(exemplar, samples),
            # crops of the samples, as of the photo: the chance level depends on the size
            "cell_lattice": M.cell_lattice([c for cs in per_seed for c in cs], cfg.cell),
            # whole samples, whose cells start at their corner; pooled, as chance falls with
            # the area (the photo's crops below: as much of it)
            "cell_contrast": M.cell_contrast(samples, cfg.cell),
            "diversity": M.diversity(seed_grams, ex_grams),
            "copy_score": float(np.mean(M.copy_scores(samples, exemplar))),
        },
        # the photo against itself: half its crops vs the other half, its own seams
        baseline={
            "texture_distance": M.texture_distance(ex_grams[:half], ex_grams[half:]),
            "histogram_distance": float(np.mean([M.histogram_distance(c, exemplar) for c in ex_crops])),
            "spectrum_distance": float(np.mean([M.spectrum_distance(c, exemplar) for c in ex_crops])),
            "fine_energy": M.fine_energy(ex_crops, exemplar),
            "checker_energy": M.checker_energy(ex_crops, exemplar),
            "chroma_energy": M.chroma_energy(ex_crops, exemplar),
            "seam_score": M.seam_score(exemplar),
            "period_error": M.period_error(exemplar, ex_crops[:2]),
            "cell_lattice": M.cell_lattice(ex_crops, cfg.cell),
            "cell_contrast": M.cell_contrast(_as_much_of(exemplar, samples, cfg.crop), cfg.cell),
            "diversity": 1.0,
            "copy_score": 0.0,
        })
    # a grey photo has no chroma_energy (None): its ratio there has no meaning
    for scores in (result.metrics, result.baseline):
        if scores["chroma_energy"] is None:
            del scores["chroma_energy"]
    result.images["exemplar.png"] = exemplar
    for seed, s in zip(cfg.seeds, samples):
        result.images[f"sample_seed{seed}.png"] = s
    result.images["repeat_2x2.png"] = np.tile(samples[0], (2, 2, 1))
    result.info = {"config": asdict(cfg)}
    return result


# Periods come from the image's top-left PERIOD_CROP px at full resolution (a texture's
# periods are those of any big piece of it, up to a third of the piece): the spectrum of a
# whole 8K image needs several GB (measured 3.0 GB peak for 4096 px). An image too big to
# hold is scored from bands, its 2x2 repeat from a box-averaged copy of <= PREVIEW_SIDE px.
PERIOD_CROP = 2048
PREVIEW_SIDE = 2048


def evaluate_image(img: np.ndarray) -> dict:
    """Tileability of one image: its seam score and dominant periods (px; of its top-left
    PERIOD_CROP px)."""
    return {"seam_score": M.seam_score(img),
            "dominant_periods_px": _periods(img[:PERIOD_CROP, :PERIOD_CROP])}


def _periods(img: np.ndarray) -> list[float]:
    f = M.dominant_periods(img, 3)
    return [round(1 / float(np.hypot(*v)), 2) for v in f if np.hypot(*v) > 0]


def score_image_file(path) -> tuple[dict, np.ndarray]:
    """(evaluate_image's scores, the image or a shrunk copy of it for the report) of an image
    file, in bounded memory whatever its size: a PNG runtime/png.py streams (every PNG texgen
    writes, up to 65536 px a side) is read band by band (imageio.read_image_bands); another
    file, or a PNG with Average or Paeth rows, whole through imageio.read_image (its
    MAX_PIXELS limit)."""
    from texgen.runtime.imageio import read_image, read_image_bands
    from texgen.runtime.png import PngUnsupported
    found = read_image_bands(path)
    if found is not None:
        try:
            return _score_bands(*found)
        except PngUnsupported:
            pass
    img = read_image(path)
    return evaluate_image(img), img


def _score_bands(size: tuple[int, int], bands) -> tuple[dict, np.ndarray]:
    w, h = size
    seam = M.SeamMeter()
    crop = np.empty((min(h, PERIOD_CROP), min(w, PERIOD_CROP), 3), np.float32)
    shrink = Shrinker(h, w, -(-max(h, w) // PREVIEW_SIDE))
    for y, band in bands:
        seam.add(band)
        if y < len(crop):
            crop[y:y + len(band)] = band[:len(crop) - y, :crop.shape[1]]
        shrink.add(band)
    return {"seam_score": seam.score(), "dominant_periods_px": _periods(crop)}, shrink.result()


class Shrinker:
    """A box-averaged copy (k x k blocks; the last ones may be smaller) of an h x w image
    given as bands of rows."""

    def __init__(self, h: int, w: int, k: int):
        self.k, self.w = max(1, k), w
        self.out = np.zeros((-(-h // self.k), -(-w // self.k), 3), np.float64)
        self.count = np.zeros(self.out.shape[:2], np.float64)
        self.y = 0

    def add(self, band: np.ndarray) -> None:
        k = self.k
        cols = np.arange(0, self.w, k)
        sums = np.add.reduceat(band.astype(np.float64), cols, axis=1)     # (n, w/k, 3)
        widths = np.diff(np.append(cols, self.w))
        rows = (self.y + np.arange(len(band))) // k
        np.add.at(self.out, rows, sums)
        np.add.at(self.count, rows, np.broadcast_to(widths, (len(band), len(widths))))
        self.y += len(band)

    def result(self) -> np.ndarray:
        return (self.out / self.count[..., None]).astype(np.float32)


def write_image_report(folder, img: np.ndarray, scores: dict) -> Path:
    """`texgen eval --image F --report DIR`: the image's scores (metrics.json) and a 2x2 repeat
    of it (repeat_2x2.png: a seam shows as a cross; of a shrunk copy for a huge image).
    Returns metrics.json."""
    folder = Path(folder)
    save_image(folder / "repeat_2x2.png", np.tile(img, (2, 2, 1)))
    atomic_write_bytes(folder / "metrics.json", json.dumps(scores, indent=2).encode())
    return folder / "metrics.json"


def write_report(folder, result: EvalResult, title: str = "texgen evaluation") -> Path:
    """Write the images, metrics.json and index.html into `folder`; returns index.html."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in result.images.items():
        save_image(folder / name, img)
    data = {"metrics": result.metrics, "exemplar_baseline": result.baseline,
            "readings": {k: READINGS[k] for k in result.metrics}, **result.info}
    atomic_write_bytes(folder / "metrics.json", json.dumps(data, indent=2).encode())
    rows = "\n".join(
        f"<tr><td>{k}</td><td>{v:.3f}</td><td>{result.baseline.get(k, float('nan')):.3f}</td>"
        f"<td>{html.escape(READINGS[k])}</td></tr>" for k, v in result.metrics.items())
    samples = "".join(f'<figure><img src="{n}" width="256"><figcaption>{n[7:-4]}</figcaption></figure>'
                      for n in result.images if n.startswith("sample_"))
    morph = ('<h2>Morph (seed A &rarr; B &rarr; A, still tiles)</h2><img src="morph.png" width="768">'
             if "morph.png" in result.images else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:14px sans-serif;max-width:1100px;margin:2em auto}} figure{{display:inline-block;margin:4px}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>kind: {html.escape(str(result.info.get('kind')))}; maps: {html.escape(', '.join(result.info.get('maps', [])))}</p>
<h2>Exemplar and samples</h2><figure><img src="exemplar.png" width="256"><figcaption>exemplar</figcaption></figure>{samples}
<h2>2&times;2 repeat of one sample (seams would show as lines)</h2><img src="repeat_2x2.png" width="512">
{morph}
<h2>Metrics</h2><table><tr><th>metric</th><th>model</th><th>exemplar itself</th><th>reading</th></tr>
{rows}</table></body></html>
"""
    atomic_write_bytes(folder / "index.html", page.encode())
    return folder / "index.html"
