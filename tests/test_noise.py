"""Noise version 2 (runtime/noise.py, docs/noise.md): a pure function of (seed, sample, stream,
channel, row, col), so any window of Z is drawn on its own and equals that slice of the whole."""

import re
from pathlib import Path

import numpy as np
import pytest

from texgen.runtime.noise import (NOISE_VERSION, STREAM_CODE, STREAM_LOCAL, STREAM_PHASE, Noise,
                                  NoiseLayout, hash_bits, sample_key, sample_noise, uniform)
from texgen.validate import SEED_MAX

DOCS = Path(__file__).resolve().parent.parent / "docs" / "noise.md"
MASK = 2 ** 64 - 1


def reference_bits(seed, sample, stream, channel, row, col) -> int:
    """docs/noise.md's definition on Python integers, one value at a time: a second,
    independent implementation of what the vectorised numpy one computes."""
    def mix(x):
        x ^= x >> 30
        x = (x * 0xBF58476D1CE4E5B9) & MASK
        x ^= x >> 27
        x = (x * 0x94D049BB133111EB) & MASK
        return x ^ (x >> 31)
    g = 0x9E3779B97F4A7C15
    key = mix((seed + (sample + 1) * g) & MASK)
    line = mix(key ^ mix((stream << 56) | (channel << 32) | row))
    return mix((line + (col + 1) * g) & MASK)


def reference_value(stream, bits) -> np.float32:
    u = np.float32((bits >> 40) * 2.0 ** -24)
    if stream == STREAM_PHASE:
        return np.float32(u * np.float32(2 * np.pi))
    return np.float32(2 * u - 1)


def table():
    """The test vectors of docs/noise.md: (seed, sample, stream, channel, row, col, bits, value)."""
    rows = []
    for line in DOCS.read_text().splitlines():
        m = re.fullmatch(r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|"
                         r"\s*(\d+)\s*\|\s*0x([0-9a-f]{16})\s*\|\s*(\S+)\s*\|", line)
        if m:
            *ints, bits, value = m.groups()
            rows.append((*map(int, ints), int(bits, 16), np.float32(float(value))))
    return rows


def test_docs_table_matches_the_implementation_and_the_reference():
    rows = table()
    assert len(rows) >= 12                          # the table is there and parsed
    for seed, sample, stream, ch, row, col, bits, value in rows:
        got = hash_bits(sample_key(seed, sample), stream, [ch], [row], [col])[0, 0, 0]
        assert int(got) == bits == reference_bits(seed, sample, stream, ch, row, col)
        assert reference_value(stream, bits) == value        # float32 printed exactly
        u = uniform(sample_key(seed, sample), stream, [ch], [row], [col])[0, 0, 0]
        assert u == np.float32((bits >> 40) * 2.0 ** -24)
    # the table spans what matters: every stream, the largest seed, samples, texnet's channels
    assert {r[2] for r in rows} == {STREAM_LOCAL, STREAM_CODE, STREAM_PHASE}
    assert max(r[0] for r in rows) == SEED_MAX and max(r[1] for r in rows) > 0
    assert max(r[3] for r in rows) >= 4094


def test_noise_values_match_the_reference_on_random_cells():
    rng = np.random.default_rng(0)
    for _ in range(40):
        seed, sample = int(rng.integers(0, SEED_MAX, dtype=np.int64)), int(rng.integers(0, 4))
        ch, row, col = (int(v) for v in rng.integers(0, [5000, 3000, 3000]))
        got = hash_bits(sample_key(seed, sample), STREAM_LOCAL, [ch], [row], [col])[0, 0, 0]
        assert int(got) == reference_bits(seed, sample, STREAM_LOCAL, ch, row, col)


def test_z_of_a_window_is_that_slice_of_the_whole_torus():
    layout = NoiseLayout(3, 5, 2)
    for morph in (None, 9):
        n = Noise(layout, 12345, (6, 7), morph_seed=morph)
        whole = n.whole()
        assert whole.shape == (1, 10, 6, 7) and whole.dtype == np.float32
        rows, cols = np.array([5, 0, 1]), np.array([6, 0, 2, 3])
        np.testing.assert_array_equal(n.window(rows, cols), whole[:, :, rows][:, :, :, cols])
        # canvas cells past the torus wrap: row 11 is row 5, column -1 is column 6
        np.testing.assert_array_equal(n.window([11, -6], [-1, 7]), whole[:, :, [5, 0]][:, :, :, [6, 0]])


def test_layout_and_distributions():
    layout = NoiseLayout(4, 6, 3)
    z = Noise(layout, 7, (40, 50)).whole()[0]
    glob, local, phase = z[:4], z[4:10], z[10:]
    assert np.all(glob == glob[:, :1, :1]) and np.abs(glob).max() <= 1
    assert np.all(phase == phase[:, :1, :1]) and phase.min() >= 0 and phase.max() < 2 * np.pi
    # uniform(-1, 1): mean 0, variance 1/3, exact multiples of 2**-23
    assert abs(local.mean()) < 0.02 and abs(local.var() - 1 / 3) < 0.01
    assert np.all(local * 2 ** 23 == np.round(local * 2 ** 23)) and local.min() >= -1 and local.max() < 1
    # neighbouring cells, channels and seeds are uncorrelated
    for a, b in ((local[:, :, 1:], local[:, :, :-1]), (local[:, 1:], local[:, :-1]),
                 (local[1:], local[:-1]), (local, Noise(layout, 8, (40, 50)).whole()[0, 4:10])):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.03


def test_seeds_samples_and_morphs():
    layout = NoiseLayout(2, 3, 1)
    a = Noise(layout, SEED_MAX, (3, 4)).whole()
    assert np.isfinite(a).all() and not np.array_equal(a, Noise(layout, 0, (3, 4)).whole())
    batch = sample_noise(layout, 3, 4, seed=5, batch=2)
    np.testing.assert_array_equal(batch[1:], Noise(layout, 5, (3, 4), sample=1).whole())
    assert not np.array_equal(batch[0], batch[1])
    # a morph starts at the seed's code and is the other seed's halfway across
    n = Noise(layout, 1, (2, 8), morph_seed=2)
    z = n.whole()[0]
    np.testing.assert_allclose(z[:2, 0, 0], n.code(), atol=1e-6)
    np.testing.assert_allclose(z[:2, 1, 4], n.code(2), atol=1e-6)
    with pytest.raises(ValueError):
        Noise(layout, -1, (2, 2)).whole()
    assert NOISE_VERSION == 2


def test_training_streams_keep_their_distribution():
    """A numpy Generator (training) draws the same layout and ranges from its own stream."""
    layout = NoiseLayout(2, 3, 1)
    z = sample_noise(layout, 4, 5, np.random.default_rng(0), batch=2)
    assert z.shape == (2, 6, 4, 5)
    assert np.abs(z[:, :5]).max() <= 1 and 0 <= z[:, 5].min() and z[:, 5].max() < 2 * np.pi
    np.testing.assert_array_equal(z, sample_noise(layout, 4, 5, np.random.default_rng(0), batch=2))
