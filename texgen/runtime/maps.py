"""Material maps: the map vocabulary, file naming, and maps derived from a colour texture.

numpy only (no torch, no scipy), so the Blender add-on and `texgen export-set` share it.

A painter's output (C, H, W) in [-1, 1] is a stack of maps named by the model's ONNX metadata
"channels", e.g. ["color"] or ["color", "normal", "roughness"]. `material_maps` returns each
wanted map as float32 in [0, 1]: learned maps come straight from the stack, the others are
derived (height from colour, normal and AO from height, roughness from colour).

Seamless in, seamless out: every filter here is circular (Gaussian blurs are products in the
Fourier domain, gradients are np.roll differences) and every normalisation is a global
statistic, so map(np.roll(color)) == np.roll(map(color)): a tile's derived maps tile too.

Conventions:
* color stays sRGB-encoded; every other map is linear data.
* normals are unit tangent-space vectors n encoded as 0.5 + 0.5 * n; "gl" (OpenGL, Blender,
  Poly Haven's nor_gl) has green pointing up the image, "dx" (DirectX, Unreal) down.
* height is 0 (low) .. 1 (high); roughness 0 (mirror) .. 1 (matte); ao 0 (occluded) .. 1 (open).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Iterable, Iterator

import numpy as np

from texgen.errors import TexgenError
from texgen.validate import Range

__all__ = ["MAP_NAMES", "SINGLE_CHANNEL_MAPS", "DERIVED_FROM", "NAMINGS", "MapParams",
           "material_maps", "iter_material_maps", "available_maps", "check_map_names",
           "check_wanted", "map_channels",
           "map_file_name", "colour_space", "luminance", "srgb_to_linear", "blur",
           "height_from_color", "normal_from_height", "roughness_from_color", "ao_from_height",
           "encode_normal"]

MAP_NAMES = ("color", "normal", "height", "roughness", "ao")
# Scalar maps: one value per pixel (stored as grey); color and normal have 3 channels.
SINGLE_CHANNEL_MAPS = frozenset({"height", "roughness", "ao"})
# Where a map comes from when the model did not learn it (color has no source: it is painted).
DERIVED_FROM = {"height": "color", "normal": "height", "roughness": "color", "ao": "height"}
# File-name suffix of each map in the two public libraries' conventions: name_diff.png,
# name_Color.png. Normals have one suffix per green convention ("normal_gl", "normal_dx").
NAMINGS = {
    "polyhaven": {"color": "diff", "normal_gl": "nor_gl", "normal_dx": "nor_dx",
                  "height": "disp", "roughness": "rough", "ao": "ao"},
    "ambientcg": {"color": "Color", "normal_gl": "NormalGL", "normal_dx": "NormalDX",
                  "height": "Displacement", "roughness": "Roughness", "ao": "AmbientOcclusion"},
}
NORMAL_CONVENTIONS = ("gl", "dx")

# Rec. 709 / sRGB primaries: relative luminance of linear RGB.
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], np.float32)   # Rec. 709 R, G, B


def luma(x):
    """x's brightness, (..., 3, H, W) -> (..., 1, H, W): Rec. 709 luma on the stored values.
    numpy or torch: chroma below, and the training floor under fine detail
    (train/descriptor.SpectrumLoss.fine_shortfall)."""
    r, g, b = (float(w) for w in LUMA_WEIGHTS)
    return r * x[..., 0:1, :, :] + g * x[..., 1:2, :, :] + b * x[..., 2:3, :, :]


def chroma(x):
    """x's colour less its luma, (..., 3, H, W) -> the same: what is left of each channel
    once the brightness (Rec. 709 luma, on the stored values) is taken out; grey is 0.
    numpy or torch: eval's chroma_energy, the training cap (train/descriptor.SpectrumLoss)
    and the half-resolution colour layer (models/layers.HalfChromaConvTranspose2d)."""
    return x[..., :3, :, :] - luma(x)


def _help(text: str, range: Range | None = None, **kw):
    """A dataclass field carrying its help text (the CLI and Blender show it) and the range of
    its values (of each value, for a tuple; the CLI's option refuses the rest)."""
    return field(metadata={"help": text, "range": range}, **kw)


_PX = Range(0, 65536)            # a length in px of the canvas: at most the largest side


@dataclass
class MapParams:
    """Every knob of the derived maps. Lengths are in pixels of the painted canvas (a model
    paints features at a fixed pixel size, so a bigger canvas shows more of them, not bigger)."""

    normal_strength: float = _help(
        "relief of the full height range in px, as the normals see it: higher is bumpier",
        Range(0, 1000), default=4.0)
    normal_convention: str = _help(
        'green channel: "gl" (OpenGL, Blender: up) or "dx" (DirectX, Unreal: down)', default="gl")
    height_scales: tuple = _help(
        "Gaussian blur radii (px) of the luminance layers summed into height: small ones keep "
        "fine grain, large ones give broad shapes", Range(0, 65536, lo_open=True),
        default=(1.0, 4.0, 16.0))
    height_weights: tuple = _help("weight of each height_scales layer", Range(0, 1000),
                                  default=(0.2, 0.3, 0.5))
    height_highpass: float = _help(
        "shading broader than this (px) is removed from height, so a lighting gradient in the "
        "photo is not read as a slope; 0 keeps it", _PX, default=64.0)
    height_invert: bool = _help("bright is low (default: dark crevices are low)", default=False)
    roughness_base: float = _help("roughness of an average-luminance pixel, 0..1", Range(0, 1),
                                  default=0.7)
    roughness_contrast: float = _help(
        "roughness change per standard deviation of luminance", Range(0, 10), default=0.15)
    roughness_invert: bool = _help("bright is rough (default: dark is rough)", default=False)
    roughness_blur: float = _help("blur (px) of the luminance first, against speckle", _PX,
                                  default=1.0)
    ao_radius: float = _help("largest neighbourhood (px) searched for occluders", _PX,
                             default=16.0)
    ao_strength: float = _help(
        "darkening per unit of cavity depth (how far below its neighbourhood's mean height a "
        "point lies); 0 gives no AO", Range(0, 1000), default=2.0)

    def __post_init__(self):
        self.height_scales = tuple(float(s) for s in self.height_scales)
        self.height_weights = tuple(float(w) for w in self.height_weights)
        if self.normal_convention not in NORMAL_CONVENTIONS:
            raise TexgenError(f"normal convention must be gl or dx, not {self.normal_convention!r}")
        if not self.height_scales or len(self.height_scales) != len(self.height_weights):
            raise TexgenError(f"height scales {self.height_scales} and weights "
                              f"{self.height_weights} must be non-empty and of the same length")
        for f in fields(self):          # NaN, inf, a roughness of 2: refused here, not painted
            rng, value = f.metadata["range"], getattr(self, f.name)
            if rng is not None:
                for v in value if isinstance(value, tuple) else (value,):
                    rng.check(f.name.replace("_", " "), v)
        if sum(self.height_weights) <= 0:
            raise TexgenError("the height weights must sum above 0")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def help(cls) -> dict[str, str]:
        """{field name: help text}, for building UIs from this one definition."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


# --------------------------------------------------------------------------- names

def check_map_names(names: Iterable[str]) -> tuple[str, ...]:
    """names as a tuple, or TexgenError naming the first unknown one and the valid ones."""
    names = tuple(names)
    for n in names:
        if n not in MAP_NAMES:
            raise TexgenError(f"unknown map {n!r}: valid maps are {', '.join(MAP_NAMES)}")
    if len(set(names)) != len(names):
        raise TexgenError(f"maps named twice in {', '.join(names)}")
    return names


def map_channels(name: str) -> int:
    """Channels a map takes in a model's output stack."""
    return 1 if name in SINGLE_CHANNEL_MAPS else 3


def colour_space(name: str, linear_color: bool = False) -> str:
    """"sRGB" for color (unless written to a linear format such as EXR), else "linear"."""
    return "sRGB" if name == "color" and not linear_color else "linear"


def map_file_name(base: str, name: str, naming: str = "polyhaven", convention: str = "gl",
                  ext: str = ".png") -> str:
    """File name of map `name` of the texture `base`: e.g. bricks_nor_gl.png (polyhaven),
    bricks_NormalDX.png (ambientcg)."""
    if naming not in NAMINGS:
        raise TexgenError(f"unknown naming {naming!r}: use one of {', '.join(NAMINGS)}")
    key = f"normal_{convention}" if name == "normal" else name
    return f"{base}_{NAMINGS[naming][key]}{ext}"


def available_maps(channels: Iterable[str]) -> tuple[str, ...]:
    """The maps material_maps can return for a model whose stack holds `channels`."""
    have = set(check_map_names(channels))
    while True:                                 # close over DERIVED_FROM (a short chain)
        more = {m for m, src in DERIVED_FROM.items() if src in have} - have
        if not more:
            return tuple(m for m in MAP_NAMES if m in have)
        have |= more


def check_wanted(wanted: Iterable[str], channels: list[str]) -> tuple[str, ...]:
    """`wanted` as a tuple, or TexgenError if a name is unknown or cannot be made from a model
    painting `channels` (e.g. roughness from a height-only model)."""
    wanted = check_map_names(wanted)
    can = available_maps(channels)
    for name in wanted:
        if name not in can:
            raise TexgenError(f"cannot make a {name} map from a model that paints "
                              f"{', '.join(channels)}: it can give {', '.join(can)}")
    return wanted


# --------------------------------------------------------------------------- filters

def _srgb_curve(c: np.ndarray) -> np.ndarray:
    """The IEC 61966-2-1 sRGB decoding curve, float64 in, float64 out."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


# The curve at every 16-bit level: a lookup is 5x faster than pow() on a 4096 px canvas, and
# exact to the 16 bits that the PNG and EXR files it feeds carry.
_SRGB_LUT = _srgb_curve(np.arange(65536) / 65535.0).astype(np.float32)


def _srgb_codes(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> their nearest 16-bit codes (uint16), the LUT's index."""
    x = np.clip(np.asarray(c, np.float32), 0, 1)
    x *= np.float32(65535)
    x += np.float32(0.5)
    return x.astype(np.uint16)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light, float32 (to 16-bit precision)."""
    return _SRGB_LUT[_srgb_codes(c)]


# one lookup table per channel with its Rec. 709 weight folded in: luminance is three
# lookups and two sums on (H, W) planes, not a (H, W, 3) float copy and a matrix product
_LUMA_LUTS = [_SRGB_LUT * w for w in LUMA_WEIGHTS]


def luminance(color: np.ndarray) -> np.ndarray:
    """Relative luminance (H, W) of an sRGB-encoded (H, W, 3) colour in [0, 1]."""
    color = np.asarray(color)
    lum = _LUMA_LUTS[0][_srgb_codes(color[..., 0])]
    for c in (1, 2):
        lum += _LUMA_LUTS[c][_srgb_codes(color[..., c])]
    return lum


def _gauss(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Fourier transform (rfft2 layout, float32) of a unit-sum Gaussian of std sigma px on an
    (H, W) torus: a circular blur. Separable: exp(-2 pi^2 sigma^2 (fy^2 + fx^2)) is the outer
    product of one row and one column, so only H + W/2 exponentials are taken."""
    k = -2.0 * np.pi ** 2 * sigma ** 2
    gy = np.exp(k * np.fft.fftfreq(shape[0]) ** 2).astype(np.float32)
    gx = np.exp(k * np.fft.rfftfreq(shape[1]) ** 2).astype(np.float32)
    return np.multiply.outer(gy, gx)


def _filtered(x: np.ndarray, transfer: np.ndarray, spectrum: np.ndarray | None = None) -> np.ndarray:
    """x (H, W) circularly filtered by `transfer` (rfft2 layout); spectrum: rfft2(x) when the
    caller has it already (height and roughness filter the same luminance)."""
    spec = np.fft.rfft2(x) if spectrum is None else spectrum
    return np.fft.irfft2(spec * transfer, s=x.shape).astype(np.float32)


def blur(x: np.ndarray, sigma: float, spectrum: np.ndarray | None = None) -> np.ndarray:
    """Circular Gaussian blur of (H, W): the image wraps around, like the texture."""
    if sigma <= 0:
        return np.asarray(x, np.float32)
    return _filtered(x, _gauss(x.shape, sigma), spectrum)


def _stretch(x: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> np.ndarray:
    """Map the lo..hi percentiles of x to 0..1 (clipped): robust to a few extreme pixels."""
    a, b = np.percentile(x, [lo, hi])
    return np.clip((x - a) / max(b - a, 1e-8), 0, 1).astype(np.float32)


def height_from_color(color: np.ndarray, params: MapParams | None = None) -> np.ndarray:
    """Height (H, W) in [0, 1] from luminance: dark is low (crevices, mortar, pores).

    A weighted sum of the luminance blurred at several scales (fine grain plus broad shape),
    minus the shading broader than height_highpass, stretched to the full range.
    """
    return _height_from_luminance(luminance(color), params or MapParams())


def _height_from_luminance(lum: np.ndarray, p: MapParams,
                           spectrum: np.ndarray | None = None) -> np.ndarray:
    total = sum(p.height_weights)
    kernel = np.zeros((lum.shape[0], lum.shape[1] // 2 + 1), np.float32)
    for s, w in zip(p.height_scales, p.height_weights):
        kernel += np.float32(w / total) * _gauss(lum.shape, s)
    if p.height_highpass > 0:
        kernel -= kernel * _gauss(lum.shape, p.height_highpass)
    h = _filtered(lum, kernel, spectrum)
    return _stretch(-h if p.height_invert else h)


def encode_normal(n: np.ndarray, convention: str = "gl") -> np.ndarray:
    """Tangent-space vectors (H, W, 3), OpenGL convention, any length -> unit length encoded
    as 0.5 + 0.5 * n, green flipped for "dx". A zero vector becomes straight up (0, 0, 1)."""
    n = np.asarray(n, np.float32).copy()
    length = np.sqrt((n * n).sum(axis=2, keepdims=True))
    flat = length[..., 0] < 1e-6
    n[flat] = (0.0, 0.0, 1.0)
    length[flat] = 1.0
    n /= length
    if convention == "dx":
        n[..., 1] = -n[..., 1]
    elif convention != "gl":
        raise TexgenError(f"normal convention must be gl or dx, not {convention!r}")
    return n * np.float32(0.5) + np.float32(0.5)


def normal_from_height(height: np.ndarray, params: MapParams | None = None) -> np.ndarray:
    """Encoded tangent-space normals (H, W, 3) in [0, 1] of the surface `height` (H, W).

    The height range 0..1 is taken as normal_strength px deep; slopes are central differences
    that wrap around the edges. Image rows run down, so in OpenGL's green-up convention the
    y component is +dh/drow (a bump's upper side faces up).
    """
    p = params or MapParams()
    if p.normal_convention not in NORMAL_CONVENTIONS:
        raise TexgenError(f"normal convention must be gl or dx, not {p.normal_convention!r}")
    h = np.asarray(height, np.float32) * np.float32(p.normal_strength * 0.5)
    nx = _wrapped_difference(h, axis=1)
    np.negative(nx, out=nx)
    ny = _wrapped_difference(h, axis=0)
    # n = (nx, ny, 1) / |n|, encoded 0.5 + 0.5 n: done on (H, W) planes (z = 1, so |n| >= 1)
    inv = nx * nx
    inv += ny * ny
    inv += np.float32(1)
    np.sqrt(inv, out=inv)
    np.reciprocal(inv, out=inv)
    inv *= np.float32(0.5)
    out = np.empty((*h.shape, 3), np.float32)
    for c, v in enumerate((nx, ny if p.normal_convention == "gl" else np.negative(ny, out=ny), inv)):
        if c < 2:
            v *= inv
        out[..., c] = v
    out += np.float32(0.5)
    return out


def _wrapped_difference(h: np.ndarray, axis: int) -> np.ndarray:
    """h[i + 1] - h[i - 1] along `axis`, wrapping around (np.roll without its two copies)."""
    h = np.moveaxis(h, axis, 0)
    d = np.empty_like(h)
    np.subtract(h[2:], h[:-2], out=d[1:-1])
    d[0], d[-1] = h[1] - h[-1], h[0] - h[-2]
    return np.moveaxis(d, 0, axis)


def roughness_from_color(color: np.ndarray, params: MapParams | None = None) -> np.ndarray:
    """Roughness (H, W) in [0, 1]: roughness_base, shifted by roughness_contrast per standard
    deviation of (slightly blurred) luminance; dark (dirt, pores) is rougher unless inverted."""
    return _roughness_from_luminance(luminance(color), params or MapParams())


def _roughness_from_luminance(lum: np.ndarray, p: MapParams,
                              spectrum: np.ndarray | None = None) -> np.ndarray:
    lum = blur(lum, p.roughness_blur, spectrum)
    z = (lum - lum.mean()) / max(float(lum.std()), 1e-8)
    sign = 1.0 if p.roughness_invert else -1.0
    return np.clip(p.roughness_base + sign * p.roughness_contrast * z, 0, 1).astype(np.float32)


def ao_from_height(height: np.ndarray, params: MapParams | None = None) -> np.ndarray:
    """Ambient occlusion (H, W) in [0, 1] from height: a point below the mean height of its
    surroundings (at radii ao_radius/4, /2 and ao_radius) sees less sky; that cavity depth,
    averaged over the radii, darkens it by ao_strength per unit."""
    p = params or MapParams()
    h = np.asarray(height, np.float32)
    if p.ao_radius <= 0 or p.ao_strength == 0:
        return np.ones_like(h)
    spec = np.fft.rfft2(h)
    cavity = np.zeros_like(h)
    radii = (p.ao_radius / 4, p.ao_radius / 2, p.ao_radius)
    for r in radii:
        around = _filtered(h, _gauss(h.shape, r), spec)
        np.subtract(around, h, out=around)
        cavity += np.maximum(around, 0, out=around)
    return np.clip(1.0 - p.ao_strength * cavity / len(radii), 0, 1).astype(np.float32)


# --------------------------------------------------------------------------- the stack

def map_slices(channels: Iterable[str]) -> dict[str, slice]:
    """{map name: its slice of the channel axis} of a stack holding `channels` in order."""
    out, start = {}, 0
    for name in check_map_names(channels):
        out[name] = slice(start, start + map_channels(name))
        start += map_channels(name)
    return out


def split_channels(image: np.ndarray, channels: list[str]) -> dict[str, np.ndarray]:
    """A painter's (C, H, W) output -> {map name: (c, H, W) view} by the model's channel list."""
    slices = map_slices(channels)
    total = sum(s.stop - s.start for s in slices.values())
    if image.ndim != 3 or image.shape[0] != total:
        raise TexgenError(f"image of shape {image.shape} does not hold the maps "
                          f"{', '.join(channels)} ({total} channels)")
    return {n: image[s] for n, s in slices.items()}


def _unit(x: np.ndarray) -> np.ndarray:
    """A learned map (c, H, W) in [-1, 1] -> (H, W, c) or (H, W) in [0, 1]. One strided copy
    into the (H, W, c) layout, then in-place arithmetic on contiguous memory (3x faster than
    arithmetic on the transposed view at 2K)."""
    y = np.ascontiguousarray(x.transpose(1, 2, 0), dtype=np.float32)
    y *= np.float32(0.5)
    y += np.float32(0.5)
    np.clip(y, 0, 1, out=y)
    return y[..., 0] if y.shape[2] == 1 else y


def material_maps(image: np.ndarray, channels: list[str], wanted: Iterable[str],
                  params: MapParams | None = None) -> dict[str, np.ndarray]:
    """{name: map} for each wanted name: see iter_material_maps."""
    return dict(iter_material_maps(image, channels, wanted, params))


def iter_material_maps(image: np.ndarray, channels: list[str], wanted: Iterable[str],
                       params: MapParams | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """image: a painter's output (C, H, W) float32 in [-1, 1] whose channel groups are named by
    `channels` (the ONNX metadata "channels", e.g. ["color"] or ["color", "normal",
    "roughness"]: color/normal 3 channels, the SINGLE_CHANNEL_MAPS 1). Returns {name: (H, W, 3)
    or (H, W) float32 in [0, 1]} for each wanted name: learned maps straight from the image
    (normals re-normalised to unit length, then encoded 0.5+0.5*n, green flipped for "dx"), the
    rest derived from colour. color stays sRGB-encoded; every other map is linear data.
    Yields (name, map) in the order wanted, each as soon as it is made, so a caller can write
    one file while the next map is derived (the Blender add-on does). Bad names fail at the
    first step, before any map is made."""
    p = params or MapParams()
    wanted = check_wanted(wanted, list(channels))
    learned = split_channels(np.asarray(image, np.float32), list(channels))
    made: dict[str, np.ndarray] = {}
    needed, more = set(), list(wanted)
    while more:                                 # the wanted maps and what they are made from
        m = more.pop()
        if m not in needed:
            needed.add(m)
            more += [DERIVED_FROM[m]] if m not in learned and m in DERIVED_FROM else []
    # height and roughness filter the same luminance: its spectrum is taken once for both
    share = len({m for m in needed - set(learned) if DERIVED_FROM.get(m) == "color"}) > 1
    shared: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in made:
            if name in learned:
                made[name] = _learned(learned[name], name, p)
            elif DERIVED_FROM[name] != "color":
                made[name] = _MAKERS[name](get(DERIVED_FROM[name]), p)
            else:
                lum = luminance_of()
                if share and "spectrum" not in shared:
                    shared["spectrum"] = np.fft.rfft2(lum)
                made[name] = _MAKERS[name](lum, p, shared.get("spectrum"))
        return made[name]

    def luminance_of() -> np.ndarray:
        if "luminance" not in shared:
            shared["luminance"] = luminance(get("color"))
        return shared["luminance"]

    for name in wanted:
        yield name, get(name)


# How each derived map is made from its DERIVED_FROM source (colour is read as luminance).
_MAKERS = {"height": _height_from_luminance, "roughness": _roughness_from_luminance,
           "normal": normal_from_height, "ao": ao_from_height}


def _learned(x: np.ndarray, name: str, p: MapParams) -> np.ndarray:
    if name == "normal":        # a GAN's three channels are not unit length: renormalise
        return encode_normal(x.transpose(1, 2, 0), p.normal_convention)
    return _unit(x)
