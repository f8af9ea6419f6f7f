"""The texture and content losses on the fixed VGG-19 (models/vgg.py): one definition for
Gatys' pixel optimisation, Texture Networks, stylisation, PSGAN's descriptor term and the
benchmarks, so their losses compare.

Two texture losses, both on relu1_1 .. relu5_1 and both relative per layer (this VGG's deep
features are 100x smaller than relu1_1's, and with a fixed weight they would count for
nothing, while coarse structure is theirs):

    gram  Gatys et al. (2015): E = mean over layers of ||G_l(x) - A_l||^2 / ||A_l||^2, with
          G_l the Gram matrix of x's features (divided by H*W, models/vgg.gram) and A_l the
          exemplar's. Matches second moments only. 0: the exemplar's statistics; ~1: unrelated.
    swd   Sliced Wasserstein (Heitz et al., CVPR 2021): project each layer's feature vectors
          on C random unit directions (new ones every step), sort the projections and compare
          them with the exemplar's sorted projections (of a fresh random subset as big as the
          image's, or its quantiles interpolated to the image's count where it has fewer):
          the squared 1-D optimal-transport distance per direction, over the exemplar's mean
          squared projection. It matches the whole distribution of features,
          not only their second moments.
    content  mean((F(x) - F(content))^2) at relu4_2.
and one on pixels, beside them:
    spectrum Liu, Gousseau & Xia (2016)'s spectrum constraint, as a loss: the Fourier
          modulus of the samples against the exemplar's (SpectrumLoss). VGG statistics are
          blind to where repeats fall and to how much fine grain there is; the modulus holds
          both: a lattice's lines are its peaks, and speckle is energy in its outer ring.
    lattice  the share of the samples' variance that repeats in every noise cell
          (eval/metrics.lattice_share), above the exemplar's own (LatticeLoss): neither VGG
          statistics nor a patch discriminator kept G from painting one motif per cell;
          and its second order, contrast and edges at the same places in every cell
          (eval/metrics.contrast_spread).
Images go in as (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from texgen.errors import TexgenError
from texgen.eval.metrics import CHROMA_FROM, contrast_spread, is_grey, lattice_share, random_crops
from texgen.runtime.maps import chroma, luma
from texgen.models.vgg import CONTENT_LAYER, TEXTURE_LAYERS, VGG19, gram

LOSSES = ("gram", "swd")
EXEMPLAR_CROP = 512     # the exemplar's statistics are gathered over crops this big: bounded memory
MIN_SIDE = 32           # px: relu5_1 is 1/16 of the image, and reflect padding needs 2 px there
SWD_POSITIONS = 1 << 14  # feature vectors per layer kept of the exemplar for swd (a random
                         # subset; each step compares as many of them as the sample has)


def rescale(img: np.ndarray, factor: float) -> np.ndarray:
    """H x W x C in [0, 1] resized by `factor` (the style scale: > 1 makes the texture's
    features bigger in the output, < 1 smaller), antialiased."""
    if factor == 1:
        return img
    if not 0.05 <= factor <= 8:
        raise TexgenError(f"style scale {factor:g} is out of range (0.05..8)")
    h, w = img.shape[:2]
    size = (max(16, round(h * factor)), max(16, round(w * factor)))
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x[0].clamp(0, 1).numpy().transpose(1, 2, 0)


class DescriptorLoss(nn.Module):
    """The descriptor with the exemplars' targets: mean Gram matrices over every image (and
    over crops of big ones, weighted by area: Grams are per-position means), or for swd a
    random subset of every image's feature vectors."""

    def __init__(self, exemplars: list[np.ndarray], weights=None, style_scale: float = 1.0,
                 layers=TEXTURE_LAYERS, device="cpu", kind: str = "gram"):
        super().__init__()
        if kind not in LOSSES:
            raise TexgenError(f"the texture loss must be one of {', '.join(LOSSES)}, not {kind!r}")
        if not any(min(np.shape(im)[:2]) * style_scale >= MIN_SIDE for im in exemplars):
            raise TexgenError(f"the exemplar is too small for the VGG-19 descriptor ({MIN_SIDE} px "
                              f"a side at least, after --style-scale)")
        self.kind, self.layers = kind, tuple(layers)
        self.vgg = VGG19(weights, last="relu5_1").to(device)
        self._rng = np.random.default_rng(0)        # swd directions when no stream is given
        sums, area, feats = None, 0, {n: [] for n in self.layers}
        with torch.no_grad():
            for img in exemplars:
                img = rescale(np.asarray(img, np.float32)[..., :3], style_scale)
                h, w = img.shape[:2]
                for y in range(0, h, EXEMPLAR_CROP):
                    for x in range(0, w, EXEMPLAR_CROP):
                        crop = img[y:y + EXEMPLAR_CROP, x:x + EXEMPLAR_CROP]
                        if min(crop.shape[:2]) < MIN_SIDE:  # a sliver at the edge says little
                            continue
                        t = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]
                        f = self.vgg(t.to(device), self.layers)
                        a = crop.shape[0] * crop.shape[1]
                        g = [gram(f[n])[0] * a for n in self.layers]
                        sums = g if sums is None else [s + x for s, x in zip(sums, g)]
                        area += a
                        if kind == "swd":
                            for n in self.layers:
                                feats[n].append(f[n][0].flatten(1).T)       # (positions, C)
        for n, s in zip(self.layers, sums):
            self.register_buffer(f"target_{n}", s / area)
        if kind == "swd":
            pick = torch.Generator().manual_seed(0)
            for n in self.layers:
                v = torch.cat(feats[n])
                if len(v) > SWD_POSITIONS:
                    v = v[torch.randperm(len(v), generator=pick)[:SWD_POSITIONS]]
                self.register_buffer(f"features_{n}", v.contiguous())
                # the mean squared projection of all of them on a random unit direction,
                # |v|^2 / C: swd's scale, steady however few of them a step sorts
                self.register_buffer(f"scale_{n}", (v ** 2).sum(1).mean() / v.shape[1])

    def targets(self) -> list[torch.Tensor]:
        return [getattr(self, f"target_{n}") for n in self.layers]

    def features(self, x: torch.Tensor, content: bool = False) -> dict[str, torch.Tensor]:
        if min(x.shape[-2:]) < MIN_SIDE:
            raise TexgenError(f"images of {x.shape[-1]}x{x.shape[-2]} px are too small for the "
                              f"VGG-19 descriptor ({MIN_SIDE} px a side at least)")
        return self.vgg(x, self.layers + ((CONTENT_LAYER,) if content else ()))

    def texture(self, feats: dict[str, torch.Tensor], rng: np.random.Generator | None = None) -> torch.Tensor:
        """(B,) texture loss of each image from its features. rng: where swd draws its
        directions (a training loop passes its own stream, so --resume repeats them)."""
        if self.kind == "swd":
            rng = rng if rng is not None else self._rng
            per_layer = [self._sliced_wasserstein(feats[n], getattr(self, f"features_{n}"),
                                                  getattr(self, f"scale_{n}"), rng)
                         for n in self.layers]
        else:
            per_layer = [((gram(feats[n]) - t) ** 2).sum(dim=(1, 2)) / (t ** 2).sum()
                         for n, t in zip(self.layers, self.targets())]
        return torch.stack(per_layer).mean(0)

    @staticmethod
    def _sliced_wasserstein(f: torch.Tensor, target: torch.Tensor, scale: torch.Tensor,
                            rng: np.random.Generator) -> torch.Tensor:
        """(B,) squared sliced Wasserstein distance between each image's feature vectors
        f (B, C, H, W) and the exemplar's (N, C), over the exemplar's mean squared projection
        (scale).
        Where the exemplar has more vectors than an image, a fresh random subset of as many
        stands for them each step (as Heitz et al. compare two images of one size): projecting
        and sorting all N was 2/3 of the loss's time (desert002, 256 px: relu4_1 16384 vectors
        for the sample's 1024) and made each step 1.5-1.9x a Gram step."""
        c = f.shape[1]
        d = torch.from_numpy(rng.standard_normal((c, c)).astype(np.float32)).to(f.device)
        d = d / d.norm(dim=0, keepdim=True)                     # C unit directions
        n = f.shape[2] * f.shape[3]
        if len(target) > n:
            target = target[torch.from_numpy(rng.choice(len(target), n, replace=False)).to(f.device)]
        # sort along the last, contiguous axis: (B, C, n) and (C, N) projections
        gen = _sorted(d.T @ f.flatten(2))
        with torch.no_grad():
            ref = _sorted((target @ d).T.contiguous())
        N = ref.shape[1]
        q = ref if N == n else _quantiles(ref, n)                          # (C, n)
        return ((gen - q) ** 2).mean(dim=(1, 2)) / scale.clamp_min(1e-12)

    def forward(self, x: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """(B,) texture loss of images x (B, 3, H, W) in [0, 1]."""
        return self.texture(self.features(x), rng)

    def content(self, feats: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """(B,) content loss against relu4_2 features `target` (of the content images)."""
        return ((feats[CONTENT_LAYER] - target) ** 2).mean(dim=(1, 2, 3))

    def content_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(x, (CONTENT_LAYER,))[CONTENT_LAYER]


class SpectrumLoss(nn.Module):
    """Relative squared distance between the amplitude spectra of samples and exemplar:
    mean over bins of (A_x - A_e)^2 / mean(A_e^2), A the square root of the power averaged
    over the batch (over random crops for the exemplar), per colour channel, each image
    less its mean and Hann-windowed (patches are not periodic: a hard border would smear
    a cross of energy through the spectrum). 0: the exemplar's spectrum; ~1: unrelated.
    Averaging power before the root keeps the target reachable for a stochastic texture,
    whose single periodograms scatter around the mean spectrum."""

    CROPS = 64   # exemplar crops averaged per image: its spectrum is a mean, not one draw

    def __init__(self, exemplars: list[np.ndarray], size: int, style_scale: float = 1.0,
                 device="cpu"):
        """size: px of the square the samples are compared at, at most the smallest
        exemplar's side (a texnet torus may be bigger than its photo: it is cropped)."""
        super().__init__()
        rng = np.random.default_rng(0)
        exemplars = [rescale(np.asarray(im, np.float32)[..., :3], style_scale) for im in exemplars]
        crops = exemplar_crops(exemplars, size, self.CROPS, rng)
        size = self.size = crops[0].shape[-1]
        if size < MIN_SIDE:
            raise TexgenError(f"the exemplar is too small for the spectrum loss ({MIN_SIDE} px "
                              f"a side at least)")
        window = torch.outer(*(torch.hann_window(size, periodic=False, dtype=torch.float32),) * 2)
        self.register_buffer("window", window / window.pow(2).mean().sqrt())
        crops = torch.from_numpy(np.stack(crops))
        with torch.no_grad():
            self.register_buffer("target", self.power(crops).sqrt())
        # the finest octave, in two bands: the ring 0.25-0.5 cycles per px (speckle), and the
        # corners beyond 0.5 where a 1 px checkerboard's energy lies (eval's fine_energy and
        # checker_energy). Each is capped on its own: a checker in the corners cannot hide
        # under a soft ring
        f = torch.hypot(torch.fft.fftfreq(size)[:, None], torch.fft.rfftfreq(size)[None])
        self.register_buffer("top", torch.stack([(f >= 0.25) & (f < 0.5), f >= 0.5]).float())
        self.register_buffer("top_target", torch.einsum("chw,bhw->cb", self.target.pow(2), self.top))
        # colour grain: the chroma's energy finer than 4 px (eval's chroma_energy), per channel.
        # Not for grey photos, as eval leaves them out: over no colour at all any grain is a
        # cap of hundreds (brick, texnet: 540 against a Gram loss of 0.03)
        self.grey = all(is_grey(im) for im in exemplars)
        self.register_buffer("chroma_band", (f >= CHROMA_FROM).float())
        with torch.no_grad():
            self.register_buffer("chroma_target", self._chroma_energy(crops))
            self.register_buffer("luma_target", self._luma_fine(crops))
        self.to(device)

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """(C, H, W//2 + 1) mean power spectrum of images x (B, C, H, W)."""
        x = (x - x.mean(dim=(2, 3), keepdim=True)) * self.window
        return torch.fft.rfft2(x, norm="ortho").abs().pow(2).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """() spectrum loss of the batch x (B, 3, H, W) in [0, 1], H, W >= size (a bigger
        x is compared by its top-left size x size crop)."""
        return self._distance(self.power(self._seen(x)))

    # a training config's weight of each term: the term's name on the progress bar, the
    # band _excess caps (None: the whole spectrum's distance, forward; "chroma": chroma_excess;
    # "floor": fine_shortfall) and its words on the line a training starts with
    WEIGHTS = {"spectrum_weight": ("spec", None, "spectrum loss"),
               "fine_weight": ("fine", 0, "fine cap"),
               "fine_floor_weight": ("floor", "floor", "fine floor"),
               "checker_weight": ("checker", 1, "checker cap"),
               "chroma_weight": ("chroma", "chroma", "chroma cap")}

    @classmethod
    def used_by(cls, cfg) -> bool:
        """Whether the training config cfg (psgan's or texnet's) weights any of its terms."""
        return any(getattr(cfg, name) for name in cls.WEIGHTS)

    @classmethod
    def describe(cls, cfg) -> str:
        """', spectrum loss 30, checker cap 1': the terms cfg (psgan's or texnet's training
        config) weights, as both trainers' start lines say them."""
        return "".join(f", {words} {getattr(cfg, name):g}"
                       for name, (_, _, words) in cls.WEIGHTS.items() if getattr(cfg, name))

    def weighted(self, x: torch.Tensor, cfg):
        """(cfg.spectrum_weight * forward(x) + cfg.fine_weight * fine_excess(x) +
        cfg.fine_floor_weight * fine_shortfall(x) + cfg.checker_weight * checker_excess(x) +
        cfg.chroma_weight * chroma_excess(x), their values as {"spec", "fine", "floor",
        "checker", "chroma"} for the progress bar), the terms with
        weight 0 left out: a trainer's share of its loss, from one power spectrum of x (and,
        for the chroma cap, one of its chroma)."""
        seen = self._seen(x)
        power, loss, terms = self.power(seen), 0.0, {}
        for name, (key, band, _) in self.WEIGHTS.items():
            weight = getattr(cfg, name)
            if weight:
                value = (self._distance(power) if band is None else
                         self._chroma_excess(seen) if band == "chroma" else
                         self._shortfall(seen) if band == "floor" else
                         self._excess(power, band))
                terms[key] = value.item()
                loss = loss + weight * value
        return loss, terms

    def _distance(self, power: torch.Tensor) -> torch.Tensor:
        amp = (power + 1e-12).sqrt()
        return (amp - self.target).pow(2).mean() / self.target.pow(2).mean().clamp_min(1e-12)

    def fine_excess(self, x: torch.Tensor) -> torch.Tensor:
        """() how far the batch x's energy in the finest octave (0.25 to 0.5 cycles per px)
        exceeds the exemplar's, per colour channel: mean of max(0, log(E_x / E_e))^2.
        Speckle, a 1-2 px colour grain, is energy there that the photo lacks; this caps it
        and leaves every other frequency, and a blur, alone (the whole spectrum loss blurred
        conc01). In logs, so the white noise a new G paints (many times the photo's) does not
        swamp the rest."""
        return self._excess(self.power(self._seen(x)), 0)

    def fine_shortfall(self, x: torch.Tensor) -> torch.Tensor:
        """() fine_excess turned round, on the brightness: how far the batch x's luma energy
        in the finest octave falls short of the exemplar's, max(0, log(E_e / E_x))^2. A blur,
        which the cap leaves alone (eval's fine_energy: metal002 0.72 of the photo's); above
        the photo's, nothing. On the luma, as eval measures it: a floor per colour channel
        was met with colour grain (metal002's chroma_energy 0.19 -> 2.3, desert002's 0.28 ->
        2.8 on texnet), the cheapest energy there is."""
        return self._shortfall(self._seen(x))

    def checker_excess(self, x: torch.Tensor) -> torch.Tensor:
        """() the same cap on the corners of the spectrum beyond 0.5 cycles per px, where a
        1 px checkerboard lies (texnet paints one: desert002 60x the photo's energy there).
        Apart from fine_excess because capping the ring too cost detail: on texnet, at the
        same weight, desert002 and gravel came out softer (texgen/train/texnet.py)."""
        return self._excess(self.power(self._seen(x)), 1)

    def chroma_excess(self, x: torch.Tensor) -> torch.Tensor:
        """() the same cap on the batch x's colour grain: its chroma's energy beyond 0.25
        cycles per px (eval/metrics.fine_chroma_energy), per chroma channel, over the
        exemplar's. A camera's photo has little colour that fine; G paints a per-pixel colour
        noise there (eval's chroma_energy: tile01 27x the photo's, wallpaper001 96x), which
        the caps above, on each channel's energy, do not tell from the photo's fine
        brightness detail that every channel shares. 0 for grey exemplars."""
        return self._chroma_excess(self._seen(x))

    def _chroma_energy(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("chw,hw->c", self.power(chroma(x)), self.chroma_band)

    def _chroma_excess(self, x: torch.Tensor) -> torch.Tensor:
        if self.grey:
            return x.new_zeros(())
        return _log_excess(self._chroma_energy(x), self.chroma_target)

    def _excess(self, power: torch.Tensor, band: int) -> torch.Tensor:
        return _log_excess(self._band(power, band), self.top_target[:, band])

    def _shortfall(self, x: torch.Tensor) -> torch.Tensor:
        return _log_excess(self.luma_target, self._luma_fine(x))

    def _luma_fine(self, x: torch.Tensor) -> torch.Tensor:
        """(1,) the batch x's luma energy in the finest octave."""
        return self._band(self.power(luma(x)), 0)

    def _band(self, power: torch.Tensor, band: int) -> torch.Tensor:
        return torch.einsum("chw,hw->c", power, self.top[band])

    def _seen(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < self.size:
            raise TexgenError(f"images of {x.shape[-1]}x{x.shape[-2]} px are smaller than the "
                              f"{self.size} px the spectrum loss compares")
        return x[..., :self.size, :self.size]


def _log_excess(e: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over channels of max(0, log(e / target))^2: a cap at the target, in logs."""
    return (e.clamp_min(1e-12) / target.clamp_min(1e-12)).log().clamp_min(0).pow(2).mean()


class LatticeLoss:
    """How much more the samples repeat in every noise cell than the exemplar does: its
    first order, mean over the batch of max(0, lattice_share(x) - the exemplar's), in [0, 1];
    and its second order, max(0, contrast_spread(x) - the exemplar's).

    A PSGAN's transposed convolutions give each of the cell's px positions its own weights;
    G soon paints the same motif in every cell whatever its local noise (conc01 at 100
    iterations: 97 % of a sample's variance, a woven lattice), and VGG statistics are blind
    to it. The exemplar's own share (crops at random places, so a real period near a
    multiple of the cell counts) is the floor, below which nothing pushes.

    With the motif gone, G still puts contrast and edges at the same places in every cell
    (conc01 at 150 iterations: cell_contrast 0.20 against the photo's 0.003), which the eye
    sees as a grid of square blocks; the second term flattens that (0.06 at weight 100), but
    at 700 iterations a 1-2 px checkerboard flattened it too (TrainConfig.contrast_weight)."""

    CROPS = 64

    def __init__(self, exemplars: list[np.ndarray], size: int, cell: int, batch: int = 2):
        crops = exemplar_crops([np.asarray(im, np.float32) for im in exemplars], size,
                               self.CROPS, np.random.default_rng(0))
        self.cell = cell
        self.target = float(lattice_share(np.stack(crops), cell).mean())
        # contrast_spread's chance level falls with the image pooled: the photo's in batches
        # (or whole, when it is one crop: a photo of the patch's size)
        n = min(batch, len(crops))
        self.contrast_target = float(np.mean([contrast_spread(np.stack(crops[i:i + n]), cell)
                                              for i in range(0, len(crops) - n + 1, n)]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """() first-order loss of the batch x (B, C, H, W), H and W multiples of the cell and
        aligned with G's cells."""
        return (lattice_share(x, self.cell) - self.target).clamp_min(0).mean()

    def contrast(self, x: torch.Tensor) -> torch.Tensor:
        """() second-order loss of the batch x, as __call__'s."""
        return (contrast_spread(x, self.cell) - self.contrast_target).clamp_min(0)


def exemplar_crops(exemplars: list[np.ndarray], size: int, n: int,
                   rng: np.random.Generator) -> list[np.ndarray]:
    """n random size x size crops (C, size, size) of each (H, W, C) exemplar (one, the
    whole image, when it is that size); size is first clamped to the smallest side."""
    size = min(size, *(min(im.shape[:2]) for im in exemplars))
    return [c.transpose(2, 0, 1) for im in exemplars
            for c in random_crops(im, size, 1 if im.shape[:2] == (size, size) else n, rng)]


def _quantiles(ref: torch.Tensor, n: int) -> torch.Tensor:
    """(C, n): the sorted rows of ref (C, N) at n evenly spaced levels (linear interpolation),
    where the exemplar has fewer vectors than the sample (N < n)."""
    N = ref.shape[1]
    pos = ((torch.arange(n, device=ref.device, dtype=torch.float32) + 0.5) * N / n - 0.5).clamp(0, N - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=N - 1)
    t = pos - lo
    return ref[:, lo] * (1 - t) + ref[:, hi] * t


def _sorted(x: torch.Tensor) -> torch.Tensor:
    """x sorted along its last axis, differentiably. On the CPU the order comes from numpy's
    SIMD sort (8-20x faster than torch.sort here: 0.03 s against 0.24 s for 2 x 64 x 16384)
    and torch gathers by it, so gradients flow as through torch.sort."""
    if x.device.type != "cpu":
        return torch.sort(x, dim=-1).values
    order = torch.from_numpy(np.argsort(x.detach().numpy(), axis=-1))
    return torch.gather(x, -1, order)


DIVERSITY_LAYER = "relu4_1"


def diversity(feats: dict[str, torch.Tensor], others: dict[str, torch.Tensor] | None = None,
              layer: str = DIVERSITY_LAYER) -> torch.Tensor:
    """Improved Texture Networks' (Ulyanov et al. 2017) diversity term: minus the mean
    distance between the features of each sample and the next in the batch, or, given
    `others` (features of as many other samples, painted from other noise), each sample's
    other (to be minimised with a small weight, against mode collapse)."""
    f = feats[layer]
    if others is not None:
        return -(f - others[layer]).abs().mean()
    if f.shape[0] < 2:
        return f.new_zeros(())
    return -(f - f.roll(1, 0)).abs().mean()
