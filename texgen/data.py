"""Training data: exemplar photos, aligned material-map stacks, and random patch crops.

Torch-free on purpose: the sampler returns numpy batches, and the trainer moves
them to the device. All randomness comes from a caller-owned
``np.random.Generator`` so a run with the same seed sees the same crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.imageio import read_image

__all__ = ["IMAGE_SUFFIXES", "SINGLE_CHANNEL_MAPS", "load_exemplars", "load_stack", "PatchSampler"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tga", ".webp", ".tif", ".tiff", ".bmp"})
# Scalar material maps: stored as grey (or RGB copies of grey) but hold one value per pixel.
SINGLE_CHANNEL_MAPS = frozenset({"roughness", "height", "ao", "metallic", "displacement"})


def load_exemplars(paths, channels: int = 3) -> list[np.ndarray]:
    """Read every image named in ``paths`` (files and/or folders) as H x W x ``channels`` float32.

    A folder contributes its image files (by suffix, sorted by name, not
    recursive); a file named explicitly is read whatever its suffix.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir()
                            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise TexgenError(f"{p}: no such file or folder")
    if not files:
        raise TexgenError(f"no images found in {', '.join(map(str, paths)) or '(no paths given)'}")
    return [read_image(f, channels=channels) for f in files]


def load_stack(maps: dict) -> np.ndarray:
    """Stack aligned material maps ({name: path}, in dict order) into H x W x sum(C).

    Names in SINGLE_CHANNEL_MAPS give 1 channel, the rest (color, normal) 3.
    """
    if not maps:
        raise TexgenError("no material maps given")
    layers, first = [], None
    for name, path in maps.items():
        arr = read_image(path, channels=1 if name.lower() in SINGLE_CHANNEL_MAPS else 3)
        if first is None:
            first = (Path(path).name, arr.shape)
        elif arr.shape[:2] != first[1][:2]:
            (h, w), (h0, w0) = arr.shape[:2], first[1][:2]
            raise TexgenError(f"maps are not aligned: {Path(path).name} is {w}x{h} "
                              f"but {first[0]} is {w0}x{h0}")
        layers.append(arr)
    return np.concatenate(layers, axis=2)


class PatchSampler:
    """Random square crops from a list of H x W x C images, as (batch, C, patch, patch) in [-1, 1].

    Each crop picks an image uniformly (not by area, as in official PSGAN) and
    then a uniform position. No flips or rotations: textures can be directional
    (wood grain, brick courses) and augmentation would teach the wrong statistics.
    """

    def __init__(self, images: list, patch: int, rng: np.random.Generator):
        if not images:
            raise TexgenError("no training images")
        if int(patch) < 1:
            raise TexgenError(f"patch size must be positive, not {patch}")
        self.patch, self.rng = int(patch), rng
        # Grey H x W arrays become H x W x 1 so every image is H x W x C.
        self.images = [np.ascontiguousarray(np.atleast_3d(im), np.float32) for im in images]
        channels = {im.shape[2] for im in self.images}
        if len(channels) != 1:
            raise TexgenError(f"training images have different channel counts {sorted(channels)}")
        for i, im in enumerate(self.images):
            h, w = im.shape[:2]
            if min(h, w) < self.patch:
                raise TexgenError(f"image {i} is {w}x{h}, smaller than the {self.patch} px training "
                                  f"patch; use a smaller --patch or a bigger image")
        self._sizes = np.array([im.shape[:2] for im in self.images])

    @property
    def channels(self) -> int:
        return self.images[0].shape[2]

    def sample(self, batch: int) -> np.ndarray:
        """Return float32 (batch, C, patch, patch) in [-1, 1]."""
        p = self.patch
        idx = self.rng.integers(len(self.images), size=batch)
        # Positions are drawn per crop from that image's valid range (inclusive of the last one).
        ys = self.rng.integers(0, self._sizes[idx, 0] - p + 1)
        xs = self.rng.integers(0, self._sizes[idx, 1] - p + 1)
        out = np.empty((batch, self.channels, p, p), np.float32)
        for k, (i, y, x) in enumerate(zip(idx, ys, xs)):
            out[k] = self.images[i][y:y + p, x:x + p].transpose(2, 0, 1)
        return out * 2.0 - 1.0
