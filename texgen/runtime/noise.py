"""The noise tensor Z: the one definition shared by training, export, runtime and Blender.

Z has shape (batch, n_global + n_local + n_periodic, h, w), one cell per `scale` output pixels:

    channels [0, G)        global code: the same vector in every cell of a sample, or a spatial
                           blend of two codes when morphing across a canvas
    channels [G, G+L)      local noise: i.i.d. uniform(-1, 1) per cell
    channels [G+L, G+L+P)  wave phases: uniform(0, 2*pi) per sample, constant over space. The
                           generator turns them into sin(k . x + phase) with wave numbers k that
                           an MLP computes from the global channels (models/layers.PeriodicWaves)

A canvas is a torus of H x W cells. Noise version 2 (NOISE_VERSION, texgen 0.2) draws every
value as a pure function of (seed, sample, stream, channel, row mod H, column mod W): a
counter-based hash, so any window of the torus is drawn on its own, in memory bounded by the
window, and a tile painted on another machine gets the same numbers (random access). Version 1
(texgen 0.1) drew the whole torus from one numpy stream; seeds paint other images since.

How a seed becomes numbers (all arithmetic on unsigned 64-bit integers, wrapping; docs/noise.md
gives the same definition with a table of test vectors for other languages):

    mix(x)    = SplitMix64's finaliser:  x ^= x >> 30; x *= 0xBF58476D1CE4E5B9;
                                         x ^= x >> 27; x *= 0x94D049BB133111EB; x ^= x >> 31
    G         = 0x9E3779B97F4A7C15
    key       = mix(seed + (sample + 1) * G)            sample: index in a batch (painting: 0)
    line      = mix(key ^ mix(stream << 56 | channel << 32 | row))
    bits      = mix(line + (col + 1) * G)               col-th output of SplitMix64 from `line`
    u         = (bits >> 40) * 2**-24                   24 bits: exact in float32, in [0, 1)

    streams:  LOCAL  0  channel l, row, col = the cell (mod H, mod W)  -> 2u - 1
              CODE   1  channel g, row = col = 0                       -> 2u - 1
              PHASE  2  channel p, row = col = 0                       -> float32(u) * float32(2 pi)

A morph (manifold models) blends the codes of `seed` and `morph_seed` with raised-cosine weights
of the column (cyclic_morph), so it is random access too.

Training draws from its own numpy stream (PCG64, in sample_noise when given a Generator): the
same distributions, and resumed runs continue that stream exactly; it never needs a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_VERSION = 2
STREAM_LOCAL, STREAM_CODE, STREAM_PHASE = 0, 1, 2

_U = np.uint64
_GOLDEN = _U(0x9E3779B97F4A7C15)
_M1, _M2 = _U(0xBF58476D1CE4E5B9), _U(0x94D049BB133111EB)
_S30, _S27, _S31, _S32, _S40, _S56 = (_U(s) for s in (30, 27, 31, 32, 40, 56))
MAX_CHANNELS = 2 ** 24          # channel << 32 must not reach the stream's byte
MAX_ROW = 2 ** 32


@dataclass(frozen=True)
class NoiseLayout:
    n_global: int = 60
    n_local: int = 30
    n_periodic: int = 6

    @property
    def channels(self) -> int:
        return self.n_global + self.n_local + self.n_periodic

    @property
    def periodic_slice(self) -> slice:
        return slice(self.n_global + self.n_local, self.channels)


# ----------------------------------------------------------------------------- the hash

def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (in place on arrays; wraps mod 2**64)."""
    x = np.asarray(x, np.uint64)
    if x.ndim == 0:
        x = x.reshape(1)
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def sample_key(seed: int, sample: int = 0) -> np.uint64:
    """The 64-bit key of one sample of a seed: mix(seed + (sample + 1) * G)."""
    if seed < 0 or sample < 0:
        raise ValueError(f"seeds and samples are non-negative, not {seed}, {sample}")
    return mix64(np.array([(seed + (sample + 1) * 0x9E3779B97F4A7C15) % 2 ** 64], np.uint64))[0]


def hash_bits(key, stream: int, channels, rows, cols) -> np.ndarray:
    """bits for every (channel, row, col) of the given 1-D arrays: (len(channels), len(rows),
    len(cols)) uint64. rows and cols as given (the caller reduces them mod the torus)."""
    ch = np.asarray(channels, np.int64).reshape(-1)
    r = np.asarray(rows, np.int64).reshape(-1)
    c = np.asarray(cols, np.int64).reshape(-1)
    if ch.size and (ch.min() < 0 or ch.max() >= MAX_CHANNELS):
        raise ValueError(f"noise channels run 0..{MAX_CHANNELS - 1}")
    if r.size and (r.min() < 0 or r.max() >= MAX_ROW) or c.size and c.min() < 0:
        raise ValueError("noise rows and columns are non-negative (wrapped into the torus)")
    head = (_U(stream) << _S56) | (ch.astype(np.uint64)[:, None] << _S32) | r.astype(np.uint64)[None, :]
    line = mix64(mix64(head) ^ _U(key))                           # (channels, rows)
    step = (c.astype(np.uint64) + _U(1)) * _GOLDEN                  # (cols,)
    return mix64(line[:, :, None] + step[None, None, :])


def uniform(key, stream: int, channels, rows, cols) -> np.ndarray:
    """u in [0, 1) as float32 (24 bits: exact), shape (len(channels), len(rows), len(cols))."""
    bits = hash_bits(key, stream, channels, rows, cols)
    bits >>= _S40
    u = bits.astype(np.float32)
    u *= np.float32(2.0 ** -24)
    return u


def _signed(u: np.ndarray) -> np.ndarray:
    """2u - 1 in place: exact in float32 (a multiple of 2**-23 in [-1, 1))."""
    u *= np.float32(2.0)
    u -= np.float32(1.0)
    return u


# ----------------------------------------------------------------------------- a sample

@dataclass(frozen=True)
class Noise:
    """The noise of one sample on an H x W-cell torus (`torus` = (H, W)), any window of it
    drawn on its own: window(rows, cols) is the same slice of Z wherever and whenever it is
    asked for. morph_seed: blend the global code to that seed's and back across the width."""
    layout: NoiseLayout
    seed: int
    torus: tuple[int, int]
    morph_seed: int | None = None
    sample: int = 0

    def __post_init__(self):
        if min(self.torus) < 1:
            raise ValueError(f"noise canvas must be at least 1x1 cells, got "
                             f"{self.torus[0]}x{self.torus[1]}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(1, channels, H, W): the array this stands for (runtime/tiling.tile_noise)."""
        return (1, self.layout.channels, *self.torus)

    @property
    def key(self) -> np.uint64:
        return sample_key(self.seed, self.sample)

    def code(self, seed: int | None = None) -> np.ndarray:
        """(G,) the global code of `seed` (default: this sample's)."""
        key = self.key if seed is None else sample_key(seed, self.sample)
        return _signed(uniform(key, STREAM_CODE, np.arange(self.layout.n_global), [0], [0]))[:, 0, 0]

    def phases(self) -> np.ndarray:
        """(P,) wave phases in [0, 2 pi)."""
        u = uniform(self.key, STREAM_PHASE, np.arange(self.layout.n_periodic), [0], [0])[:, 0, 0]
        return u * np.float32(2 * np.pi)

    def window(self, rows, cols, local: int | None = None) -> np.ndarray:
        """Z at canvas cells rows x cols (any integers: taken mod the torus), shape
        (1, channels, len(rows), len(cols)) float32. local: draw only the first `local` local
        channels and leave the rest 0 (a stylisation net's content channels are filled by
        runtime/stylize.py)."""
        lay = self.layout
        H, W = self.torus
        r = np.asarray(rows, np.int64) % H
        c = np.asarray(cols, np.int64) % W
        G, L = lay.n_global, lay.n_local
        n = L if local is None else local
        z = np.zeros((1, lay.channels, r.size, c.size), np.float32)
        if n:
            z[0, G:G + n] = _signed(uniform(self.key, STREAM_LOCAL, np.arange(n), r, c))
        if lay.n_periodic:
            z[0, G + L:] = self.phases()[:, None, None]
        if G:
            code = self.code()
            if self.morph_seed is None:
                z[0, :G] = code[:, None, None]
            else:
                b = cyclic_morph(1, W)[1, 0][c]                     # (cols,) weight of code B
                other = self.code(self.morph_seed)
                z[0, :G] = (code[:, None] * (np.float32(1) - b)[None] + other[:, None] * b[None])[:, None, :]
        return z

    def whole(self) -> np.ndarray:
        """Z of the whole torus, (1, channels, H, W)."""
        return self.window(np.arange(self.torus[0]), np.arange(self.torus[1]))


# ----------------------------------------------------------------------------- batches

def draw_codes(layout: NoiseLayout, rng: np.random.Generator, batch: int) -> np.ndarray:
    """Global codes, (batch, G), from a training stream: one point of the texture manifold per
    sample."""
    return rng.uniform(-1.0, 1.0, (batch, layout.n_global)).astype(np.float32)


def sample_noise(
    layout: NoiseLayout,
    h: int,
    w: int,
    seed: int | np.random.Generator = 0,
    batch: int = 1,
    codes: np.ndarray | None = None,
    morph: np.ndarray | None = None,
) -> np.ndarray:
    """Z for a batch of h x w-cell tori.

    seed: an int draws noise version 2 (sample i of the batch is Noise(..., sample=i)); a numpy
        Generator (training) draws the same distributions from that stream, in the order
        codes (batch, G), local (batch, L, h, w), phases (batch, P).
    codes: optional (K, G) global codes to use instead of the drawn ones (K = 1 or batch, or
        K >= 2 together with `morph`).
    morph: optional (K, h, w) blend weights (summing to 1 per cell) that mix the K codes over
        space.
    """
    if h < 1 or w < 1:
        raise ValueError(f"noise canvas must be at least 1x1 cells, got {h}x{w}")
    G, L, P = layout.n_global, layout.n_local, layout.n_periodic
    z = np.empty((batch, layout.channels, h, w), np.float32)
    if isinstance(seed, np.random.Generator):
        drawn = draw_codes(layout, seed, batch)                 # always drawn: keeps the stream
        z[:, G:G + L] = seed.uniform(-1.0, 1.0, (batch, L, h, w)).astype(np.float32)
        z[:, G + L:] = seed.uniform(0.0, 2 * np.pi, (batch, P)).astype(np.float32)[:, :, None, None]
        z[:, :G] = drawn[:, :, None, None]
    else:
        for i in range(batch):
            z[i] = Noise(layout, int(seed), (h, w), sample=i).whole()[0]
    if G and (codes is not None or morph is not None):
        if morph is not None:
            if codes is None or len(codes) != len(morph):
                raise ValueError("morph needs one global code per blend-weight map")
            glob = np.einsum("kg,khw->ghw", np.asarray(codes, np.float32), morph.astype(np.float32))
            z[:, :G] = glob[None]
        else:
            c = np.broadcast_to(np.asarray(codes, np.float32), (batch, G))
            z[:, :G] = c[:, :, None, None]
    return z


def cyclic_morph(h: int, w: int) -> np.ndarray:
    """Blend weights (2, h, w) that go from code A to code B and back across the width.

    A straight A-to-B ramp would put a seam where the right edge meets the left; a raised cosine
    keeps the canvas a torus, so a morphed texture still tiles.
    """
    x = np.arange(w, dtype=np.float32) / w
    b = 0.5 - 0.5 * np.cos(2 * np.pi * x)
    b = np.broadcast_to(b, (h, w))
    return np.stack([1.0 - b, b]).astype(np.float32)
