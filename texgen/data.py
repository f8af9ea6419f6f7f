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
from texgen.runtime.maps import SINGLE_CHANNEL_MAPS, blur, check_map_names, map_channels

__all__ = ["IMAGE_SUFFIXES", "SINGLE_CHANNEL_MAPS", "load_exemplars", "image_files", "load_stack", "check_aligned",
           "parse_map_paths", "training_stack", "PatchSampler"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tga", ".webp", ".tif", ".tiff", ".bmp"})
# SINGLE_CHANNEL_MAPS (scalar maps, read as grey) is defined with the other map tables in
# texgen/runtime/maps.py and re-exported here.


def load_exemplars(paths, channels: int = 3) -> list[np.ndarray]:
    """Read every image named in ``paths`` (files and/or folders) as H x W x ``channels`` float32
    (image_files says which)."""
    return [read_image(f, channels=channels) for f in image_files(paths)]


def image_files(paths) -> list[Path]:
    """The image files ``paths`` (files and/or folders) name: a folder contributes its image
    files (by suffix, sorted by name, not recursive); a file named explicitly counts whatever
    its suffix."""
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
    return files


def load_stack(maps: dict) -> np.ndarray:
    """Stack aligned material maps ({name: path}, in dict order) into H x W x sum(C).

    Names in SINGLE_CHANNEL_MAPS give 1 channel, the rest (color, normal) 3. Unknown names,
    maps of different sizes and maps visibly shifted against the first raise TexgenError.
    """
    if not maps:
        raise TexgenError("no material maps given")
    check_map_names(maps)
    layers, first = [], None
    for name, path in maps.items():
        arr = read_image(path, channels=map_channels(name))
        if first is None:
            first = (Path(path).name, arr.shape)
        elif arr.shape[:2] != first[1][:2]:
            (h, w), (h0, w0) = arr.shape[:2], first[1][:2]
            raise TexgenError(f"maps are not aligned: {Path(path).name} is {w}x{h} "
                              f"but {first[0]} is {w0}x{h0}")
        layers.append(arr)
    names = [Path(p).name for p in maps.values()]
    for name, arr in zip(names[1:], layers[1:]):
        check_aligned(layers[0], arr, names[0], name)
    return np.concatenate(layers, axis=2)


def parse_map_paths(text: str) -> dict[str, str]:
    """'color=wall.png,normal=wall_nor_gl.png' -> {"color": "wall.png", "normal": ...}."""
    maps: dict[str, str] = {}
    for item in filter(None, (t.strip() for t in str(text).split(","))):
        name, eq, path = item.partition("=")
        if not eq or not name.strip() or not path.strip():
            raise TexgenError(f"--maps item {item!r} is not NAME=PATH (e.g. normal=wall_nor_gl.png)")
        name = name.strip().lower()
        if name in maps:
            raise TexgenError(f"--maps names {name} twice")
        maps[name] = path.strip()
    check_map_names(maps)
    return maps


def training_stack(images: list, maps: dict) -> tuple[list[str], np.ndarray]:
    """(map names in channel order, H x W x C stack) to train on from one exemplar IMAGE and
    its aligned maps {name: path}. IMAGE is the colour map unless `maps` names one itself,
    in which case IMAGE must be that same file. The colour always comes first, whatever
    order --maps gives: previews, thumbnails and the painters read it there."""
    if len(images) != 1:
        raise TexgenError(f"--maps trains on one aligned stack: give one image, not {len(images)}")
    image = Path(images[0])
    if "color" in maps and Path(maps["color"]).resolve() != image.resolve():
        raise TexgenError(f"--maps color={maps['color']} is not the image {image}: give the "
                          f"colour map as the image, or leave color out of --maps")
    maps = {"color": str(image), **{k: v for k, v in maps.items() if k != "color"}}
    return list(maps), load_stack(maps)


def _edges(img: np.ndarray) -> np.ndarray:
    """Where an image (H, W, C) changes: gradient magnitude, slightly blurred, mean removed.
    Edges are what colour, normal, height and roughness maps of one surface share."""
    g = img.mean(axis=2)
    e = blur(np.hypot(np.roll(g, -1, 1) - g, np.roll(g, -1, 0) - g), 1.5)
    return e - e.mean()


def check_aligned(ref: np.ndarray, other: np.ndarray, ref_name: str = "the first map",
                  name: str = "a map", min_corr: float = 0.3) -> None:
    """TexgenError when `other` lines up with `ref` clearly better after a shift than as it is.

    Cross-correlates the two edge images (circularly, by FFT): aligned maps of one surface
    peak at zero shift. A shift is reported only when its correlation is at least `min_corr`
    and twice that at zero, so a periodic texture (equally good a whole period away) or maps
    with little in common (a flat roughness) pass.
    """
    a, b = _edges(ref), _edges(other)
    norm = a.size * float(a.std()) * float(b.std())
    if norm < 1e-12:
        return
    corr = np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), s=a.shape) / norm
    k = np.unravel_index(int(np.argmax(corr)), corr.shape)
    if corr[k] < min_corr or corr[0, 0] * 2 > corr[k]:
        return
    # corr peaks at k = -(shift of other): wrap to the signed shift
    dy, dx = ((-np.array(k) + np.array(a.shape) // 2) % np.array(a.shape)) - np.array(a.shape) // 2
    raise TexgenError(f"maps are not aligned: {name} looks shifted by about x={dx}, y={dy} px against "
                      f"{ref_name}; maps must line up pixel for pixel")


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
