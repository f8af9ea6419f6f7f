"""The texture and content losses of Gatys et al. (2015, 2016) on the fixed VGG-19
(models/vgg.py): one definition for Gatys' pixel optimisation, Texture Networks training,
stylisation and the benchmark, so their Gram losses compare.

    texture loss  E = mean over layers l of  ||G_l(x) - A_l||^2 / ||A_l||^2
                  G_l: Gram matrix of x's features at relu1_1 .. relu5_1 (divided by H*W,
                  models/vgg.gram), A_l the exemplar's. Gatys' E_l, sum (G - A)^2 over
                  4 N^2 M^2, scaled per layer by the target's energy instead: this VGG's
                  deep Grams are 100x smaller than relu1_1's, and with a fixed weight they
                  would count for nothing (coarse structure is theirs). 0: the exemplar's
                  statistics; about 1: unrelated.
    content loss  mean((F(x) - F(content))^2) at relu4_2.
Images go in as (B, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from texgen.errors import TexgenError
from texgen.models.vgg import CONTENT_LAYER, TEXTURE_LAYERS, VGG19, gram

EXEMPLAR_CROP = 512     # the exemplar's Grams are averaged over crops this big: bounded memory
MIN_SIDE = 32           # px: relu5_1 is 1/16 of the image, and reflect padding needs 2 px there


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


class GramLoss(nn.Module):
    """The descriptor with the exemplars' target Grams, averaged over every image (and over
    crops of big ones, weighted by area: Grams are per-position means)."""

    def __init__(self, exemplars: list[np.ndarray], weights=None, style_scale: float = 1.0,
                 layers=TEXTURE_LAYERS, device="cpu"):
        super().__init__()
        if not any(min(np.shape(im)[:2]) * style_scale >= MIN_SIDE for im in exemplars):
            raise TexgenError(f"the exemplar is too small for the VGG-19 descriptor ({MIN_SIDE} px "
                              f"a side at least, after --style-scale)")
        self.layers = tuple(layers)
        self.vgg = VGG19(weights, last="relu5_1").to(device)
        sums, area = None, 0
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
                        feats = self.vgg(t.to(device), self.layers)
                        a = crop.shape[0] * crop.shape[1]
                        g = [gram(feats[n])[0] * a for n in self.layers]
                        sums = g if sums is None else [s + x for s, x in zip(sums, g)]
                        area += a
        for n, s in zip(self.layers, sums):
            self.register_buffer(f"target_{n}", s / area)

    def targets(self) -> list[torch.Tensor]:
        return [getattr(self, f"target_{n}") for n in self.layers]

    def features(self, x: torch.Tensor, content: bool = False) -> dict[str, torch.Tensor]:
        if min(x.shape[-2:]) < MIN_SIDE:
            raise TexgenError(f"images of {x.shape[-1]}x{x.shape[-2]} px are too small for the "
                              f"VGG-19 descriptor ({MIN_SIDE} px a side at least)")
        return self.vgg(x, self.layers + ((CONTENT_LAYER,) if content else ()))

    def texture(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) texture loss of each image from its features."""
        per_layer = [((gram(feats[n]) - t) ** 2).sum(dim=(1, 2)) / (t ** 2).sum()
                     for n, t in zip(self.layers, self.targets())]
        return torch.stack(per_layer).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) texture loss of images x (B, 3, H, W) in [0, 1]."""
        return self.texture(self.features(x))

    def content(self, feats: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """(B,) content loss against relu4_2 features `target` (of the content images)."""
        return ((feats[CONTENT_LAYER] - target) ** 2).mean(dim=(1, 2, 3))

    def content_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(x, (CONTENT_LAYER,))[CONTENT_LAYER]


def diversity(feats: dict[str, torch.Tensor], layer: str = "relu4_1") -> torch.Tensor:
    """Improved Texture Networks' (Ulyanov et al. 2017) diversity term: minus the mean
    distance between the features of each sample and the next in the batch (to be
    minimised with a small weight, against mode collapse)."""
    f = feats[layer]
    if f.shape[0] < 2:
        return f.new_zeros(())
    return -(f - f.roll(1, 0)).abs().mean()
