"""What a model knows about the real surface it learned: its size and how its maps should read.

numpy only: training records it (from `texgen train` options and the exemplar itself), the
ONNX export carries it (metadata "texel_size" and "map_defaults"), and the CLI, export-set and
the Blender add-on all start from it.

* texel size: metres of surface per painted pixel. A model paints features at the exemplar's
  pixel size, so a bigger canvas covers more surface, never bigger bricks: the add-on maps a
  W px texture onto W * texel_size metres.
* map defaults: MapParams fields that suit this texture better than the generic defaults,
  e.g. height_invert for light mortar. estimate_map_defaults reads them off the exemplar.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields, replace

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.maps import MapParams, blur, luminance

# Assumed when a model does not say (trained before texel sizes, or without --texel-size):
# 2 mm per pixel, i.e. a 1024 px photo of about 2 m of surface, a common texture-photo framing.
DEFAULT_TEXEL_SIZE = 0.002
_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254, "ft": 0.3048}


def parse_length(text: str) -> float:
    """'2.4m', '240cm', '2400 mm', '8ft' or a bare number of metres -> metres (> 0)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
    if not m or m.group(2) not in ("", *_UNITS):
        raise TexgenError(f"length {text!r}: expected a number with m, cm, mm, in or ft, "
                          f"e.g. 2.4m")
    value = float(m.group(1)) * _UNITS.get(m.group(2) or "m")
    if not 0 < value < 1e6:
        raise TexgenError(f"length {text!r} must be above 0")
    return value


@dataclass(frozen=True)
class Surface:
    """texel_size: metres per pixel (None: unknown); map_defaults: {MapParams field: value}."""
    texel_size: float | None = None
    map_defaults: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.texel_size is not None and not (0 < self.texel_size < 1e3):
            raise TexgenError(f"texel size must be above 0 m per pixel, not {self.texel_size}")
        object.__setattr__(self, "map_defaults", dict(self.map_defaults))
        self.params()                           # unknown fields or bad values fail here

    def params(self, **overrides) -> MapParams:
        """MapParams from the generic defaults, then this model's, then `overrides` (given by
        the user: None means not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        known = {f.name for f in fields(MapParams)}
        bad = sorted(set(self.map_defaults) - known)
        if bad:
            raise TexgenError(f"unknown map setting(s) {', '.join(bad)} in the model's defaults")
        try:
            return replace(MapParams(), **{**self.map_defaults, **given})
        except TypeError as e:
            raise TexgenError(f"bad map settings: {e}") from None

    @property
    def texel_size_or_default(self) -> float:
        return self.texel_size if self.texel_size is not None else DEFAULT_TEXEL_SIZE

    def to_dict(self) -> dict:
        return {"texel_size": self.texel_size, "map_defaults": dict(self.map_defaults)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Surface":
        d = d or {}
        ts = d.get("texel_size")
        return cls(None if ts in (None, "") else float(ts), dict(d.get("map_defaults") or {}))

    # the ONNX metadata form: strings ("" for an unknown texel size)
    def to_metadata(self) -> dict[str, str]:
        return {"texel_size": "" if self.texel_size is None else repr(float(self.texel_size)),
                "map_defaults": json.dumps(self.map_defaults, sort_keys=True)}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "Surface":
        try:
            return cls.from_dict({"texel_size": meta.get("texel_size", ""),
                                  "map_defaults": json.loads(meta.get("map_defaults") or "{}")})
        except (ValueError, TypeError) as e:
            raise TexgenError(f"broken surface metadata ({e})") from None


def texel_size_from(texel_size: float | None, exemplar_width: str | None,
                    exemplar_px: int | None) -> float | None:
    """The texel size train records: --texel-size as given, or --exemplar-width over the
    exemplar's width in pixels; None when neither was given."""
    if texel_size is not None and exemplar_width is not None:
        raise TexgenError("give --texel-size or --exemplar-width, not both")
    if exemplar_width is not None:
        if not exemplar_px:
            raise TexgenError("--exemplar-width needs an exemplar image")
        return parse_length(exemplar_width) / exemplar_px
    if texel_size is not None and texel_size <= 0:
        raise TexgenError(f"--texel-size must be above 0 m per pixel, not {texel_size}")
    return texel_size


# --------------------------------------------------------------------------- estimation

ANALYSIS_SIDE = 256         # the exemplar is area-averaged down to about this many px a side


def _downsample(img: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """(H, W, C): area average by a whole factor so the longer side is at most about `side`."""
    k = max(1, max(img.shape[:2]) // side)
    h, w = img.shape[0] // k * k, img.shape[1] // k * k
    return img[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))


def _two_tones(pixels: np.ndarray, iters: int = 20) -> np.ndarray:
    """k-means with k = 2 on (N, 3) colours, started from the darkest and the brightest tenth:
    True for the pixels of the second tone. Colour, not only luminance: orange brick and grey
    mortar can be equally bright."""
    order = np.argsort(pixels.mean(axis=1))
    n = max(1, len(order) // 10)
    centres = np.stack([pixels[order[:n]].mean(0), pixels[order[-n:]].mean(0)])
    second = np.zeros(len(pixels), bool)
    for _ in range(iters):
        d = ((pixels[:, None, :] - centres[None]) ** 2).sum(axis=2)
        new = d[:, 1] < d[:, 0]
        if new.all() or not new.any() or np.array_equal(new, second):
            second = new
            break
        second = new
        centres = np.stack([pixels[~second].mean(0), pixels[second].mean(0)])
    return second


def _depth(mask: np.ndarray, limit: int = 64) -> np.ndarray:
    """How many 4-neighbour erosions each pixel of mask survives (its distance, in px, to the
    other class): thin lines score 1-2, broad faces their half-width."""
    depth = np.zeros(mask.shape, np.int32)
    m = mask.copy()
    for _ in range(limit):
        if not m.any():
            break
        depth += m
        m = m & np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1)
    return depth


def _largest_share(mask: np.ndarray, limit: int = 4000) -> float:
    """Share of mask's pixels in its largest 4-connected part (label propagation): near 1 for
    a network of lines, small for scattered specks or separate faces."""
    n = int(mask.sum())
    if n == 0:
        return 0.0
    labels = np.where(mask, np.arange(mask.size).reshape(mask.shape), -1)
    for _ in range(limit):
        new = labels
        for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
            nb = np.roll(labels, shift, axis)
            new = np.where(mask & (nb >= 0), np.maximum(new, nb), new)
        if np.array_equal(new, labels):
            break
        labels = new
    return float(np.bincount(labels[mask]).max() / n)


def tone_classes(color: np.ndarray) -> list[dict]:
    """The exemplar's two tones (k-means on its lightly blurred colours, at about
    ANALYSIS_SIDE px): for each, its share of the pixels, mean thickness (erosion depth in px
    at the analysis size), connectedness (share in its largest part) and mean luminance."""
    rgb = np.asarray(color, np.float32)[..., :3]
    rgb = _downsample(np.stack([blur(rgb[..., c], 1.0) for c in range(3)], axis=-1))
    second = _two_tones(rgb.reshape(-1, 3)).reshape(rgb.shape[:2])
    lum = luminance(np.clip(rgb, 0, 1))
    out = []
    for mask in (~second, second):
        if not mask.any():
            continue
        out.append({"share": float(mask.mean()), "depth": float(_depth(mask)[mask].mean()),
                    "connected": _largest_share(mask), "luminance": float(lum[mask].mean())})
    return out


def find_joints(classes: list[dict]) -> dict | None:
    """The tone that forms joints, or None: a minority (5-50 % of the pixels), much thinner than
    the other tone (under 0.55 of its mean depth), one connected network (most of it in one
    part) that cuts the other tone into separate faces (its largest part under half). So
    bright specks, veins or wood grain are not taken for joints."""
    if len(classes) != 2:
        return None
    for lines, faces in (classes, classes[::-1]):
        if (0.05 <= lines["share"] <= 0.5 and lines["depth"] < 0.55 * faces["depth"]
                and lines["connected"] >= 0.5 and faces["connected"] < 0.5):
            return {**lines, "brighter": lines["luminance"] > faces["luminance"]}
    return None


def estimate_map_defaults(color: np.ndarray) -> dict:
    """Map defaults read off an exemplar (H, W, 3) sRGB in [0, 1]: {} or {"height_invert":
    True, "roughness_invert": True}.

    The derived maps take dark as low and rough (crevices, pores, dark grout). That is wrong
    for thin bright lines around darker faces (light mortar between bricks, grout between dark
    tiles): those joints are recessed and matte, so both maps are inverted. Dark joints, and
    textures without joints, keep the generic defaults.
    """
    joints = find_joints(tone_classes(color))
    if joints is not None and joints["brighter"]:
        return {"height_invert": True, "roughness_invert": True}
    return {}
