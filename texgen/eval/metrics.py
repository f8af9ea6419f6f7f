"""Texture quality metrics. Images are (H, W, 3) float arrays in [0, 1] (sRGB as stored).

Each metric has one job and says which way is better:

    texture_distance    Gram matrices of VGG-19 features, samples vs exemplar     lower
    histogram_distance  colour value distributions (no descriptor)               lower
    spectrum_distance   radially averaged power spectra (no descriptor)          lower
    fine_energy         energy in the finest octave, samples / exemplar           1.0 (> 1.2 speckle)
    checker_energy      energy beyond it, in the corners (a 1 px checker)        1.0 (> 1.2 halftone)
    chroma_energy       colour (less brightness) finer than 4 px, samples / ex.  1.0 (> 1.2 colour speckle)
    seam_score          steps across the wrap-around seams / interior steps      1.0 = seamless
    period_error        dominant periods of the samples vs the exemplar's        lower
    cell_lattice        share of the variance in one motif per noise cell         the photo's
    diversity           spread between samples / spread between exemplar crops   ~1, 0 = mode collapse
    copy_score          how much of a sample is pasted exemplar                  lower (fraction)

The cheap ones are numpy only; texture_distance and diversity take Gram matrices that
gram_matrices computes once per crop with a models.vgg.VGG19 (the expensive step).
"""

from __future__ import annotations

import numpy as np

from texgen.runtime.maps import LUMA_WEIGHTS, chroma
from texgen.spectrum import dominant_frequencies

# VGG-19 layers of the texture distance (Gatys et al.; relu5_1 adds little at these sizes)
GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


# ----------------------------------------------------------------------------- seams

def seam_score(img: np.ndarray) -> float:
    """How visible the wrap-around seams are when img (H x W [x C]) is repeated.

    Mean absolute step across the two wrap seams (last column -> first, last row -> first)
    divided by the mean step between neighbouring interior columns and rows. 1.0 is a
    perfect tile (the seam is like any other pair of neighbours); an untouched photo scores
    far higher. SeamMeter computes it from bands of rows (an image too big to hold).
    """
    meter = SeamMeter()
    a = np.asarray(img)
    band = max(1, 2 ** 20 // max(1, a.shape[1]))     # ~1 Mpx at a time: float64 temporaries
    for y in range(0, len(a), band):
        meter.add(a[y:y + band])
    return meter.score()


class SeamMeter:
    """seam_score of an image given as bands of rows, top to bottom (add), in the memory of a
    band: sums of the steps, the first row and the last row seen."""

    def __init__(self):
        self.seam = self.inner = 0.0
        self.n_seam = self.n_inner = 0
        self.first = self.last = None

    def add(self, rows: np.ndarray) -> None:
        a = np.asarray(rows, np.float64)
        if a.ndim == 2:
            a = a[..., None]
        if self.first is None:
            self.first = a[0].copy()
        else:
            a = np.concatenate([self.last[None], a])        # the step into this band
        across = np.abs(a[:, -1] - a[:, 0]) if self.last is None else np.abs(a[1:, -1] - a[1:, 0])
        self.seam, self.n_seam = self.seam + across.sum(), self.n_seam + across.size
        for d in (np.abs(np.diff(a[0 if self.last is None else 1:], axis=1)),
                  np.abs(np.diff(a, axis=0))):
            self.inner, self.n_inner = self.inner + d.sum(), self.n_inner + d.size
        self.last = a[-1].copy()

    def score(self) -> float:
        wrap = np.abs(self.last - self.first)               # last row -> first
        seam = (self.seam + wrap.sum()) / (self.n_seam + wrap.size)
        return float(seam / max(self.inner / max(self.n_inner, 1), 1e-12))


# ----------------------------------------------------------------------------- descriptor-free

def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over colour channels of the 1-D Wasserstein (earth mover's) distance between the
    value distributions of a and b, in units of the full range: 0 = same colours in the same
    proportions, 1 = black against white. Compares quantiles, so sizes may differ."""
    q = np.linspace(0.0, 1.0, 257)
    a, b = _rgb(a), _rgb(b)
    return float(np.mean([np.abs(np.quantile(a[..., c], q) - np.quantile(b[..., c], q)).mean()
                          for c in range(3)]))


def radial_spectrum(img: np.ndarray, bins: int = 48) -> np.ndarray:
    """log10 of the luminance power spectrum averaged over rings of equal |f|, at `bins`
    frequencies from 1/64 to 1/2 cycles per px (log-spaced): the texture's energy per scale,
    blind to orientation and position. The image is windowed so its borders add no spikes."""
    g = _luma(img)
    g = (g - g.mean()) * np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1]))
    p = np.abs(np.fft.fft2(g)) ** 2 / g.size
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(g.shape[0]), np.fft.fftfreq(g.shape[1]),
                              indexing="ij"))
    edges = np.geomspace(1 / 64, 0.5, bins + 1)
    idx = np.digitize(f.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < bins)
    total = np.bincount(idx[ok], p.ravel()[ok], bins)
    count = np.bincount(idx[ok], minlength=bins)
    return np.log10(total / np.maximum(count, 1) + 1e-12)


def spectrum_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the radial log-spectra of a and b, in decades (1.0 = ten
    times more or less energy at a typical scale): blur, noise or a wrong grain size raise it.
    Both are centre-cropped to a common square first: the ring averages depend on the size."""
    n = min(*a.shape[:2], *b.shape[:2])
    return float(np.abs(radial_spectrum(_centre(a, n)) - radial_spectrum(_centre(b, n))).mean())


def band_energy(img: np.ndarray, lo: float, hi: float = np.inf) -> float:
    """Variance of the luma carried by frequencies lo <= |f| <= hi cycles per px,
    Hann-windowed so image borders add nothing."""
    return _plane_energy(_luma(img), lo, hi)


def _plane_energy(g: np.ndarray, lo: float, hi: float) -> float:
    g = g.astype(np.float64)
    win = np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1]))
    g = (g - g.mean()) * win
    p = np.abs(np.fft.fft2(g)) ** 2 / (win ** 2).sum() / g.size
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(g.shape[0]), np.fft.fftfreq(g.shape[1]),
                              indexing="ij"))
    return float(p[(f >= lo) & (f <= hi)].sum())


CHROMA_FROM = 0.25      # cycles per px: colour detail finer than 4 px is fine colour speckle


def fine_chroma_energy(img: np.ndarray) -> float:
    """Variance of img's chroma (summed over its three channels) at frequencies beyond
    CHROMA_FROM cycles per px. A camera's photo has little colour there (demosaicing and
    JPEG keep colour coarser than brightness); a generator's per-pixel colour grain is all
    there, and brightness-only measures (top_octave_energy) miss it."""
    c = chroma(np.moveaxis(_rgb(img), -1, 0))
    return sum(_plane_energy(plane, CHROMA_FROM, np.inf) for plane in c)


def top_octave_energy(img: np.ndarray) -> float:
    """Luma variance in the finest octave of frequencies (0.25 to 0.5 cycles per px): fine
    colour speckle or noise raises it, blur lowers it."""
    return band_energy(img, 0.25, 0.5)


def fine_energy(samples: list[np.ndarray], exemplar: np.ndarray) -> float:
    """The samples' mean top_octave_energy over the exemplar's: 1.0 = as much fine detail as
    the photo; above 1.2, speckle; below 0.8, blur."""
    return float(np.mean([top_octave_energy(s) for s in samples]) /
                 max(top_octave_energy(exemplar), 1e-12))


def chroma_energy(samples: list[np.ndarray], exemplar: np.ndarray) -> float | None:
    """The samples' mean fine_chroma_energy over the exemplar's: 1.0 = as little fine colour
    grain as the photo; many times 1, colour speckle. None for a grey exemplar (is_grey):
    over its no colour at all, any sample's ratio is a number of no meaning (a texnet
    trained on scikit-image's grey brick scored 8 978 828)."""
    if is_grey(exemplar):
        return None
    return float(np.mean([fine_chroma_energy(s) for s in samples]) /
                 max(fine_chroma_energy(exemplar), 1e-12))


def is_grey(img: np.ndarray) -> bool:
    """Whether img has no colour: its chroma under half an 8-bit level everywhere."""
    return float(np.abs(chroma(np.moveaxis(_rgb(img), -1, 0))).max()) < 0.5 / 255


def checker_energy(samples: list[np.ndarray], exemplar: np.ndarray) -> float:
    """The samples' mean luma energy beyond 0.5 cycles per px (the spectrum's corners, where a
    1 px checkerboard's lies and fine_energy does not look) over the exemplar's: a camera's
    photo has little there, so a sample's halftone shows as many times 1."""
    return float(np.mean([band_energy(s, 0.5) for s in samples]) /
                 max(band_energy(exemplar, 0.5), 1e-12))


# ----------------------------------------------------------------------------- lattice

def _whole_cells_centred(x, cell: int):
    """x (..., C, H, W) cut to whole cells from its top-left, less each channel's mean."""
    x = x[..., :x.shape[-2] // cell * cell, :x.shape[-1] // cell * cell]
    return x - x.mean(axis=(-2, -1), keepdims=True)


def lattice_share(x, cell: int):
    """Share of an image's variance in its cell pattern: the mean over all its cell x cell
    blocks (from the top-left), position by position in the block. A generator paints one
    noise cell per `cell` px; when it paints the same motif in every cell, whatever the
    noise, the image is a fine woven lattice at that size and this is near 1. A stationary
    texture's is about 1 / blocks (chance). x: (..., C, H, W), a numpy array or a torch
    tensor (the training loss), -> (...,) of the same kind."""
    x = _whole_cells_centred(x, cell)
    h, w = x.shape[-2:]
    pattern = x.reshape(*x.shape[:-2], h // cell, cell, w // cell, cell).mean(axis=(-4, -2))
    return (pattern ** 2).mean(axis=(-3, -2, -1)) / ((x ** 2).mean(axis=(-3, -2, -1)) + 1e-12)


def contrast_spread(x, cell: int):
    """How unevenly contrast and edges are spread over the cell's px positions: the squared
    coefficient of variation, over the cell x cell positions, of the mean energy, |x step| and
    |y step| there, summed; pooled over every image, channel and block of x (..., C, H, W),
    whose cells start at its top-left. lattice_share sees one motif repeated in every cell;
    this sees its second order, the same places in every cell being the busy or the flat ones,
    which G's transposed convolutions (own weights per px position) leave once the motif is
    gone. Pooled, since one image's few blocks leave chance near the signal; a stationary
    texture's value falls as 1 / blocks, so compare equal amounts of image. A step term needs
    two cells along its axis (each position then has one step into the next px per block but
    the last). numpy or torch."""
    x = _whole_cells_centred(x, cell)
    h, w = x.shape[-2:]

    def per_position(a):                                    # (..., by*cell, bx*cell) -> (cell, cell)
        a = a[..., :a.shape[-2] // cell * cell, :a.shape[-1] // cell * cell]
        a = a.reshape(-1, a.shape[-2] // cell, cell, a.shape[-1] // cell, cell)
        return a.mean(axis=(0, 1, 3))

    def cv2(v):
        return ((v - v.mean()) ** 2).mean() / (v.mean() ** 2 + 1e-12)

    out = cv2(per_position(x ** 2))
    if w >= 2 * cell:
        out = out + cv2(per_position(abs(x[..., :, 1:] - x[..., :, :-1])))
    if h >= 2 * cell:
        out = out + cv2(per_position(abs(x[..., 1:, :] - x[..., :-1, :])))
    return out


def cell_contrast(images: list[np.ndarray], cell: int) -> float:
    """contrast_spread pooled over (H, W, 3) images of one size, whose cells start at their
    top-left corner (samples as painted; a photo's crops anywhere)."""
    return float(contrast_spread(np.stack([_rgb(im).transpose(2, 0, 1) for im in images]), cell))


def cell_lattice(images: list[np.ndarray], cell: int) -> float:
    """Mean lattice_share of (H, W, 3) images; compare samples with crops of the photo (a
    photo with a real period near a multiple of the cell scores above chance too)."""
    return float(np.mean([lattice_share(_rgb(im).transpose(2, 0, 1), cell) for im in images]))


# ----------------------------------------------------------------------------- periods

def dominant_periods(img: np.ndarray, n: int = 3, max_period: float | None = None) -> np.ndarray:
    """(n, 2) strongest spectral frequencies [f_y, f_x] in cycles/px (texgen.spectrum);
    periods above max_period px (default a third of the smaller side) are ignored."""
    return dominant_frequencies(_luma(img), n, max_period).astype(np.float64)


def period_error(exemplar: np.ndarray, samples: list[np.ndarray], n: int = 3) -> float:
    """How far the samples' repeats are from the exemplar's, relative: for each strong
    spectral line f of the exemplar (_strong, among its n dominant ones), the nearest strong
    spectral peak of a sample within +-50 % of f (strong: >= 10 % of the strongest there), and
    |f_sample - f| / |f|, averaged over lines and samples. 0 = the samples repeat at the
    exemplar's periods; about 0.25 or more = no line near it.

    Matching each exemplar line locally, instead of ranking the sample's lines too, keeps a
    strong harmonic or an artefact elsewhere in the sample from hiding a period it does have.
    Periods over a sixth of the samples' side are left out: shading, not structure, and too
    few repeats to measure. Means most for regular textures (bricks, tiles), little for
    stochastic ones (grass)."""
    side = min(min(s.shape[:2]) for s in samples)
    ref = _strong(exemplar, dominant_periods(exemplar, n, max_period=side / 6))
    errs = []
    for s in samples:
        g = _luma(s)
        power = np.abs(np.fft.fft2(g - g.mean())) ** 2
        grid = np.stack(np.meshgrid(np.fft.fftfreq(g.shape[0]), np.fft.fftfreq(g.shape[1]),
                                    indexing="ij"), axis=-1).reshape(-1, 2)
        neigh = np.max([np.roll(power, (dy, dx), (0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                        if dy or dx], axis=0)
        peaks = (power > neigh).ravel()
        for f in ref:
            # distance of every bin to the line, either sign (a spectrum is symmetric)
            d = np.minimum(np.linalg.norm(grid - f, axis=1), np.linalg.norm(grid + f, axis=1))
            cand = peaks & (d <= 0.5 * np.linalg.norm(f))
            if not cand.any():
                errs.append(0.5)
                continue
            strong = cand & (power.ravel() >= 0.1 * power.ravel()[cand].max())
            errs.append(d[strong].min() / np.linalg.norm(f))
    return float(np.mean(errs))


def _strong(img: np.ndarray, freqs: np.ndarray, frac: float = 0.1) -> np.ndarray:
    """The frequencies whose spectral power is at least `frac` of the strongest one's: the
    spectrum's ranking always returns n peaks, and in a texture with one real period the rest
    are noise that no sample could be expected to match."""
    g = _luma(img)
    p = np.abs(np.fft.fft2(g - g.mean())) ** 2
    iy = np.round(freqs[:, 0] * g.shape[0]).astype(int) % g.shape[0]
    ix = np.round(freqs[:, 1] * g.shape[1]).astype(int) % g.shape[1]
    power = p[iy, ix]
    return freqs[power >= frac * power.max()]


# ----------------------------------------------------------------------------- VGG-19 Gram

def random_crops(img: np.ndarray, size: int, n: int,
                 seed: int | np.random.Generator = 0) -> list[np.ndarray]:
    """n random size x size crops of img (size clamped to its shorter side); seed may be a
    Generator, which then draws them (training's losses share one)."""
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    size = min(size, h, w)
    return [img[y:y + size, x:x + size] for y, x in
            zip(rng.integers(0, h - size + 1, n), rng.integers(0, w - size + 1, n))]


def gram_matrices(vgg, crops: list[np.ndarray], layers=GRAM_LAYERS) -> list[list]:
    """Per crop, the Gram matrix of each layer (torch tensors, C x C)."""
    import torch
    from texgen.models.vgg import gram
    out = []
    with torch.no_grad():
        for c in crops:
            x = torch.from_numpy(np.ascontiguousarray(_rgb(c).transpose(2, 0, 1), np.float32))[None]
            feats = vgg(x, layers)
            out.append([gram(feats[n])[0] for n in layers])
    return out


def gram_distance(ga: list, gb: list) -> float:
    """Relative Frobenius distance ||Ga - Gb|| / ||Gb|| averaged over layers (0 = same
    statistics; around 1 = unrelated textures)."""
    return float(np.mean([((a - b).norm() / b.norm().clamp_min(1e-12)).item()
                          for a, b in zip(ga, gb)]))


def _mean_gram(grams: list[list]) -> list:
    return [sum(g[k] for g in grams) / len(grams) for k in range(len(grams[0]))]


def texture_distance(exemplar_grams: list[list], sample_grams: list[list]) -> float:
    """Gram distance of each generated crop to the exemplar crops' mean Gram matrices (both
    from gram_matrices), averaged over crops (and so over seeds). Lower is better; the same
    between two halves of the exemplar's crops is the floor to compare with."""
    ref = _mean_gram(exemplar_grams)
    return float(np.mean([gram_distance(g, ref) for g in sample_grams]))


def _pairwise(grams: list[list], pairs) -> float:
    d = [0.5 * (gram_distance(grams[i], grams[j]) + gram_distance(grams[j], grams[i]))
         for i, j in pairs]
    return float(np.mean(d)) if d else 0.0


def diversity(sample_grams: list[list[list]], exemplar_grams: list[list]) -> float:
    """How different the seeds are: sample_grams[k] are the Grams (gram_matrices) of crops of
    seed k's sample, taken at the same positions for every seed, so identical samples score
    exactly 0. The mean descriptor (Gram) distance between seeds at the same position, divided
    by the mean distance between random crops of the exemplar: about 1 = as varied as the
    photo, near 0 = every seed paints the same thing (mode collapse), well above 1 = samples
    wander off. A photo whose look drifts across it (perspective, light) counts the drift as
    variety, so a stationary sample scores low there without collapse: brick's texnet
    differs between seeds 0.39 as much as the photo between places, but its places differ
    only 0.35 as much, so its seeds differ 1.12x as much as its own places
    (benchmarks/out/quality_ab.md, 2026-12-06)."""
    n_seeds, n_pos = len(sample_grams), len(sample_grams[0])
    g = [gc for grams in sample_grams for gc in grams]
    between = _pairwise(g, [(a * n_pos + p, b * n_pos + p) for p in range(n_pos)
                            for a in range(n_seeds) for b in range(a + 1, n_seeds)])
    ge = exemplar_grams
    spread = _pairwise(ge, [(a, b) for a in range(len(ge)) for b in range(a + 1, len(ge))])
    return between / max(spread, 1e-9)


# ----------------------------------------------------------------------------- copying

def copy_score(sample: np.ndarray, exemplar: np.ndarray, patch: int = 16, shrink: int = 4) -> float:
    """Fraction of the sample's patches that are near-exact copies of an exemplar patch.

    Both images are shrunk `shrink` times (a patch then spans patch*shrink px: copying that
    matters is of whole regions) and each sample patch finds its nearest exemplar patch. It
    counts as copied when that distance is under a fifth of what the exemplar's own right half
    finds in its left half (how alike two different places of the photo are). 0 = nothing
    pasted; a generator that memorised the photo scores near 1. A perfectly periodic exemplar
    repeats itself exactly, so its threshold is ~0 and only pixel-exact copies count."""
    return copy_scores([sample], exemplar, patch, shrink)[0]


def copy_scores(samples: list[np.ndarray], exemplar: np.ndarray, patch: int = 16,
                shrink: int = 4) -> list[float]:
    """copy_score of each sample, with the exemplar's patches and threshold found once."""
    e = _shrink(_rgb(exemplar), shrink)
    shrunk = [_shrink(_rgb(s), shrink) for s in samples]
    if min(e.shape[:2]) < 2 * patch or min(min(s.shape[:2]) for s in shrunk) < patch:
        raise ValueError(f"images too small for {patch}-px patches after shrinking {shrink}x")
    # every exemplar position up to ~40k patches, then a sparser grid (bounded memory and time)
    step = max(1, int(np.ceil(np.sqrt(e.shape[0] * e.shape[1] / 40_000))))
    half = e.shape[1] // 2
    ref = _nn_distances(_patches(e[:, half:], patch, 2 * step), _patches(e[:, :half], patch, step))
    threshold = 0.2 * np.median(ref)
    ex_patches = _patches(e, patch, step)
    return [float(np.mean(_nn_distances(_patches(s, patch, 2), ex_patches) <= threshold))
            for s in shrunk]


def _patches(img: np.ndarray, p: int, stride: int) -> np.ndarray:
    v = np.lib.stride_tricks.sliding_window_view(img, (p, p), axis=(0, 1))[::stride, ::stride]
    return v.reshape(-1, p * p * img.shape[2]).astype(np.float32)


def _nn_distances(q: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """RMS distance per pixel value from each row of q to its nearest row of ref."""
    rn = (ref ** 2).sum(1)
    out = np.empty(len(q), np.float32)
    for i in range(0, len(q), chunk):
        qc = q[i:i + chunk]
        d2 = (qc ** 2).sum(1)[:, None] + rn[None, :] - 2 * qc @ ref.T
        out[i:i + chunk] = np.sqrt(np.maximum(d2.min(1), 0) / q.shape[1])
    return out


# ----------------------------------------------------------------------------- helpers

def _rgb(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, np.float32)
    if a.ndim == 2:
        a = a[..., None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3]


def _luma(img: np.ndarray) -> np.ndarray:
    a = _rgb(img)
    return a @ LUMA_WEIGHTS                # on the stored (sRGB) values: luma, not luminance


def _centre(a: np.ndarray, n: int) -> np.ndarray:
    y, x = (a.shape[0] - n) // 2, (a.shape[1] - n) // 2
    return a[y:y + n, x:x + n]


def _shrink(a: np.ndarray, k: int) -> np.ndarray:
    """Box-average k x k blocks (drops a remainder of fewer than k rows or columns)."""
    if k == 1:
        return a
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    return a[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))
