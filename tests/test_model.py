"""Generator, waves, noise, tiling and resampling: the properties that make textures seamless.

All models here are tiny and untrained; the properties tested are architectural, so they hold
for any weights.
"""

import math

import numpy as np
import pytest
import torch

from conftest import seam_ratio, tiny_config
from texgen.eval.metrics import fine_chroma_energy, top_octave_energy
from texgen.models.layers import (HalfChromaConvTranspose2d, PeriodicWaves, checker_free_kernel,
                                  WrapConvTranspose2d, chroma_soft_kernel, fine_soft_kernel,
                                  wrap_pad)
from texgen.train.batchnorm import calibrate_batchnorm
from texgen.models.psgan import Discriminator, Generator
from texgen.paint import torch_runner
from texgen.runtime.canvas import synthesize, torus_cells
from texgen.runtime.maps import LUMA_WEIGHTS
from texgen.runtime.noise import NoiseLayout, cyclic_morph, sample_noise
from texgen.runtime.tiling import paint_bands, tile_noise, tile_starts
from texgen.spectrum import dominant_frequencies


# ----------------------------------------------------------------------------- seams

@pytest.mark.parametrize("cells_w,cells_h", [(5, 3), (3, 5)])
def test_painted_canvas_wraps_at_non_power_of_two_sizes(tiny_G, cells_w, cells_h):
    cfg = tiny_G.cfg
    W, H = cells_w * cfg.scale, cells_h * cfg.scale
    img = synthesize(torch_runner(tiny_G), cfg.layout, cfg.scale, tiny_G.margin, W, H, seed=3)
    assert img.shape == (cfg.channels, H, W)
    assert np.isfinite(img).all()
    assert img.std() > 1e-3                     # not a flat image, which would wrap trivially
    assert seam_ratio(img, axis=2) <= 1.5       # last column meets the first
    assert seam_ratio(img, axis=1) <= 1.5       # last row meets the first


def test_seam_ratio_detects_a_seam():
    """The check above can fail: a ramp plus noise does not wrap."""
    rng = np.random.default_rng(0)
    h, w = 96, 160
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :] + np.linspace(0, 1, h)[:, None]
    img = (ramp + 0.01 * rng.standard_normal((h, w)))[None]
    assert seam_ratio(img, axis=2) > 10
    assert seam_ratio(img, axis=1) > 10


def test_morphing_canvas_still_wraps(tiny_G):
    cfg = tiny_G.cfg
    img = synthesize(torch_runner(tiny_G), cfg.layout, cfg.scale, tiny_G.margin,
                     5 * cfg.scale, 2 * cfg.scale, seed=1, morph_seed=2)
    plain = synthesize(torch_runner(tiny_G), cfg.layout, cfg.scale, tiny_G.margin,
                       5 * cfg.scale, 2 * cfg.scale, seed=1)
    assert not np.allclose(img, plain)          # the morph changed the picture
    assert seam_ratio(img, axis=2) <= 1.5
    assert seam_ratio(img, axis=1) <= 1.5


# ----------------------------------------------------------------------------- equivariance

@torch.no_grad()
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("net", ["tiny_G", "noisy_G", "layered_G"])
def test_rolling_noise_by_one_cell_rolls_output_by_scale(request, net, dim):
    G = request.getfixturevalue(net)          # plain, pixel noise, and waves at every layer too
    cfg = G.cfg
    h, w = 3, 4
    z = torch.from_numpy(sample_noise(cfg.layout, h, w, seed=5))
    ys, xs = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    torus = torch.tensor([h, w], dtype=torch.float32)
    out = G(z, coords=(ys, xs), torus=torus)
    if dim == 3:
        coords = (ys, torch.roll(xs, 1, 0))
    else:
        coords = (torch.roll(ys, 1, 0), xs)
    rolled = G(torch.roll(z, 1, dim), coords=coords, torus=torus)
    expected = torch.roll(out, cfg.scale, dim)
    assert (rolled - expected).abs().max().item() < 1e-5
    # and the output is not trivially shift invariant, so the check means something
    assert (expected - out).abs().max().item() > 1e-3


# ----------------------------------------------------------------------------- seeds

def test_same_seed_same_image_other_seed_other_image(tiny_G):
    cfg = tiny_G.cfg
    run = torch_runner(tiny_G)
    args = (cfg.layout, cfg.scale, tiny_G.margin, 3 * cfg.scale, 2 * cfg.scale)
    a = synthesize(run, *args, seed=11)
    b = synthesize(run, *args, seed=11)
    c = synthesize(run, *args, seed=12)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-4


def test_runner_restores_training_mode(tiny_cfg):
    G = Generator(tiny_cfg).train()
    z, ys, xs = tile_noise(sample_noise(tiny_cfg.layout, 1, 1, seed=0), 0, 0, 1, 1, G.margin)
    torch_runner(G)(z, ys, xs, np.array([1, 1], np.float32))
    assert G.training


# ----------------------------------------------------------------------------- tiling

def test_tile_starts_pull_back_the_last_tile():
    assert tile_starts(7, 2) == [0, 2, 4, 5]
    assert tile_starts(6, 2) == [0, 2, 4]
    assert tile_starts(3, 5) == [0]


@pytest.mark.parametrize("net", ["tiny_G", "noisy_G", "layered_G"])
def test_tiled_bands_equal_one_shot(request, net):
    G = request.getfixturevalue(net)          # plain, pixel noise, and waves at every layer too
    cfg = G.cfg
    H, W = 5, 7
    z = sample_noise(cfg.layout, H, W, seed=4)
    run = torch_runner(G)
    torus = np.array([H, W], np.float32)
    painter = lambda zt, ys, xs: run(zt, ys, xs, torus)

    def paint(**kw):
        bands = list(paint_bands(painter, z, cfg.scale, G.margin, (0, H), (0, W), **kw))
        assert [r for r, _ in bands] == sorted(r for r, _ in bands)     # top to bottom
        return np.concatenate([b for _, b in bands], axis=1), len(bands)
    whole, n = paint(tile=None)
    assert n == 1
    calls = []
    tiled, n = paint(tile=2, progress=lambda d, t: calls.append((d, t)))
    assert n == 3                                           # rows 0-1, 2-3, 4 (pulled back)
    assert whole.shape == tiled.shape == (cfg.channels, H * cfg.scale, W * cfg.scale)
    assert np.abs(whole - tiled).max() < 1e-5
    assert calls[-1] == (12, 12) and len(calls) == 12       # 3 rows x 4 columns of tiles
    banded, n = paint(tile=None, band_cells=2)              # one tile a band, 2 cells high
    assert n == 3 and np.abs(whole - banded).max() < 1e-5
    # a region that runs past the torus wraps: cell rows 4..7 are 4, 0, 1, 2
    part = np.concatenate([b for _, b in paint_bands(painter, z, cfg.scale, G.margin,
                                                      (4, 8), (0, W), tile=2)], axis=1)
    s = cfg.scale
    assert np.abs(part[:, :s] - whole[:, 4 * s:]).max() < 1e-5
    assert np.abs(part[:, s:] - whole[:, :3 * s]).max() < 1e-5


@pytest.mark.parametrize("net", ["tiny_G", "noisy_G", "chroma_G", "layered_G"])
def test_interior_of_a_tile_equals_the_wrapped_torus(request, net):
    """What training sees (forward: every layer wraps the whole torus) is what the painters
    paint (interior: valid layers on a tile and its context), pixel for pixel."""
    G = request.getfixturevalue(net)   # plain, pixel noise, half-resolution colour, waves at every layer
    cfg, m, s = G.cfg, G.margin, G.cfg.scale
    H, W = 5, 6
    z = sample_noise(cfg.layout, H, W, seed=2)
    torus = torch.tensor([float(H), float(W)])
    coords = (torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32))
    with torch.no_grad():
        whole = G(torch.from_numpy(z), coords, torus)
        for y0, x0, h, w in [(0, 0, H, W), (3, 4, 2, 2), (1, 5, 3, 1)]:
            zt, ys, xs = tile_noise(z, y0, x0, h, w, m)
            part = G.interior(torch.from_numpy(zt), (torch.from_numpy(ys),
                                                          torch.from_numpy(xs)), torus)
            rows = (np.arange(y0 * s, (y0 + h) * s) % (H * s))
            cols = (np.arange(x0 * s, (x0 + w) * s) % (W * s))
            ref = whole[..., rows, :][..., cols]
            assert part.shape == ref.shape == (1, cfg.channels, h * s, w * s)
            assert (part - ref).abs().max().item() < 1e-5
        # one cell less of context and the border pixels are wrong: the margin is needed
        zt, ys, xs = tile_noise(z, 1, 1, 2, 2, m)
        short = G.interior(torch.from_numpy(zt[..., 1:-1, 1:-1]),
                                (torch.from_numpy(ys[1:-1]), torch.from_numpy(xs[1:-1])), torus)
        assert short.shape[-1] < 2 * s


@pytest.mark.parametrize("net", ["tiny_G", "noisy_G", "layered_G"])
def test_tiled_synthesize_equals_one_shot(request, net):
    G = request.getfixturevalue(net)          # plain, pixel noise, and waves at every layer too
    cfg = G.cfg
    run = torch_runner(G)
    args = (cfg.layout, cfg.scale, G.margin, 5 * cfg.scale, 3 * cfg.scale)
    a = synthesize(run, *args, seed=9)
    b = synthesize(run, *args, seed=9, tile=2)
    assert np.abs(a - b).max() < 1e-5


def test_paint_cancel_stops_between_tiles():
    from texgen.runtime.tiling import Cancelled
    z = np.zeros((1, 1, 8, 8), np.float32)
    painted = []

    def run(zt, ys, xs):
        painted.append(1)
        return np.zeros((1, 1, zt.shape[2], zt.shape[3]), np.float32)
    with pytest.raises(Cancelled):
        list(paint_bands(run, z, 1, 0, (0, 8), (0, 8), tile=2, cancel=lambda: len(painted) >= 5))
    assert len(painted) == 5                        # of 16 tiles: it stopped when asked


# ----------------------------------------------------------------------------- waves

@pytest.mark.parametrize("n_global", [0, 3])
def test_rounded_waves_are_periodic_on_the_torus(n_global):
    torch.manual_seed(0)
    P = 2
    init_k = [[1.3, 0.45], [0.7, 2.1]]          # [k_y; k_x] rad/cell, not multiples of 2pi/N
    waves = PeriodicWaves(n_global, P, hidden=8, init_k=init_k).eval()
    layout = NoiseLayout(n_global, 2, P)
    h, w = 5, 7
    z = torch.from_numpy(sample_noise(layout, h + 1, w + 1, seed=1))
    ys = torch.arange(h + 1, dtype=torch.float32)
    xs = torch.arange(w + 1, dtype=torch.float32)
    with torch.no_grad():
        out, _ = waves(z, coords=(ys, xs), torus=torch.tensor([h, w], dtype=torch.float32))
        raw, _ = waves(z, coords=(ys, xs))
    assert out.shape[1] == layout.channels + P          # each phase -> sin and cos
    sc = out[:, -2 * P:]
    assert (sc[..., :, w] - sc[..., :, 0]).abs().max().item() < 1e-4
    assert (sc[..., h, :] - sc[..., 0, :]).abs().max().item() < 1e-4
    # the waves really vary, and without rounding they would not wrap
    assert sc.std().item() > 0.1
    rs = raw[:, -2 * P:]
    assert (rs[..., :, w] - rs[..., :, 0]).abs().max().item() > 1e-2
    # the other channels pass through untouched
    torch.testing.assert_close(out[:, : layout.channels - P], z[:, : layout.channels - P])


def test_waves_at_every_layer_sit_at_their_pixels():
    """levels: hidden layer l's waves are the same plane waves at the centres of its 2**l x
    2**l pixels per cell, the block of a cell centred on the cell's own coordinate."""
    waves = PeriodicWaves(0, 2, init_k=[[0.9, 0.3], [0.2, 1.7]], levels=2).eval()
    z = torch.from_numpy(sample_noise(NoiseLayout(0, 1, 2), 3, 4, seed=0))
    with torch.no_grad():
        cells, fine = waves(z)
        k = waves.wave_numbers(z)[0, :, 0, 0]
    assert len(fine) == 2
    for level, got in enumerate(fine, 1):
        n = 2 ** level
        assert got.shape == (1, 4, 3 * n, 4 * n)
        y = ((torch.arange(3 * n) + 0.5) / n - 0.5).reshape(-1, 1)
        x = (torch.arange(4 * n) + 0.5) / n - 0.5
        phase = z[0, -2:].repeat_interleave(n, -2).repeat_interleave(n, -1)
        arg = k[:2, None, None] * y + k[2:, None, None] * x + phase
        torch.testing.assert_close(got[0], torch.cat([arg.sin(), arg.cos()]), atol=1e-5, rtol=0)
    # the cell grid's own waves are those of PeriodicWaves without levels
    alone, none = PeriodicWaves(0, 2, init_k=[[0.9, 0.3], [0.2, 1.7]]).eval()(z)
    assert none == [] and torch.equal(alone, cells)


def test_waves_follow_canvas_coordinates():
    """A tile at columns 3..5 of the canvas gets the canvas' own waves there."""
    waves = PeriodicWaves(0, 2, init_k=[[0.9, 0.3], [0.2, 1.7]]).eval()
    z = torch.from_numpy(sample_noise(NoiseLayout(0, 1, 2), 4, 6, seed=0))
    torus = torch.tensor([4, 6], dtype=torch.float32)
    with torch.no_grad():
        full, _ = waves(z, torus=torus)
        part, _ = waves(z[..., 3:6], coords=(torch.arange(4.0), torch.arange(3.0, 6.0)), torus=torus)
    torch.testing.assert_close(part, full[..., 3:6])


@pytest.mark.parametrize("n_global", [0, 3])
def test_waves_along_keep_their_direction_and_learn_their_length(n_global):
    """wave_along: Adam's steps change each wave's period but never turn it; free waves turn."""
    init_k = torch.tensor([[1.3, 0.0, 6.0], [0.4, 2.1, 5.0]])     # [k_y; k_x]: one on an axis
    layout = NoiseLayout(n_global, 2, 3)
    z = torch.from_numpy(sample_noise(layout, 4, 4, seed=2))
    turned = {}
    for along in (True, False):
        torch.manual_seed(0)
        waves = PeriodicWaves(n_global, 3, hidden=8, init_k=init_k.tolist(), along=along)
        outputs = 3 if along else 6                    # a length per wave, or (k_y, k_x)
        hidden = 3 * 8 + 8 + 8 * outputs if n_global else 0
        assert sum(p.numel() for p in waves.parameters()) == hidden + outputs
        opt = torch.optim.Adam(waves.parameters(), 0.05)
        target = torch.randn(1, 6, 4, 4, generator=torch.Generator().manual_seed(1))
        for _ in range(30):          # any loss that pulls the waves' sin/cos somewhere else
            loss = (waves(z)[0][:, -6:] - target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            k = waves.wave_numbers(z).reshape(1, 2, 3, -1)[0]        # (2, P, cells)
        length = k.norm(dim=0) / init_k.norm(dim=0)[:, None]
        assert (length - 1).abs().max() > 0.01                       # they learned
        cross = k[0] * init_k[1, :, None] - k[1] * init_k[0, :, None]   # 0 when parallel
        turned[along] = (cross.abs() / k.norm(dim=0) / init_k.norm(dim=0)[:, None]).max().item()
    assert turned[True] < 1e-5 and turned[False] > 1e-2


@pytest.mark.parametrize("along", [False, True])
def test_shared_waves_are_one_learned_set_for_every_global_code(along):
    """wave_shared: the waves' numbers are learned but the global code does not move them, so
    every sample (and every place of a manifold's canvas) gets the same; without it, each
    global code its own."""
    init_k = [[1.3, 0.0, 6.0], [0.4, 2.1, 5.0]]
    layout = NoiseLayout(3, 2, 3)
    z = torch.cat([torch.from_numpy(sample_noise(layout, 4, 4, seed=s)) for s in (1, 2)])
    spread = {}
    for shared in (False, True):
        torch.manual_seed(0)
        waves = PeriodicWaves(3, 3, hidden=8, init_k=init_k, along=along, shared=shared)
        if shared:      # a length per wave along its direction, else (k_y, k_x): no MLP
            assert sum(p.numel() for p in waves.parameters()) == (3 if along else 6)
        opt = torch.optim.Adam(waves.parameters(), 0.05)
        target = torch.randn(2, 6, 4, 4, generator=torch.Generator().manual_seed(1))
        for _ in range(30):          # a loss that asks each sample's waves for something else
            loss = (waves(z)[0][:, -6:] - target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            k = waves.wave_numbers(z)
        assert (k - torch.tensor(init_k).reshape(1, 6, 1, 1)).abs().max() > 0.01   # learned
        spread[shared] = (k - k[:1, :, :1, :1]).abs().max().item()
    assert spread[True] == 0 and spread[False] > 1e-3


@pytest.mark.parametrize("n_global", [0, 3])
def test_grid_waves_hold_every_wave_and_snap_their_own_phases(n_global):
    """wave_grid: once a wave is a whole number of cells long, every wave keeps its starting
    number under Adam's steps; the grid waves' phases are snapped to 2 pi / n and the other's
    takes any value. Without a grid wave every wave learns."""
    pi = math.pi
    init_k = torch.tensor([[pi, 0.3, 0.0], [0.0, 1.1, pi / 2]])    # 2 cells, neither, 4 cells
    layout = NoiseLayout(n_global, 2, 3)
    z = torch.from_numpy(sample_noise(layout, 4, 4, seed=2))
    target = torch.randn(1, 6, 4, 4, generator=torch.Generator().manual_seed(1))

    def trained(k0):        # the waves after 30 steps, and how far each wave's number moved
        waves = PeriodicWaves(n_global, 3, hidden=8, init_k=k0.tolist(), grid=4)
        gain = torch.nn.Parameter(torch.ones(1))    # a layer after the waves: some gradient
        opt = torch.optim.Adam([*waves.parameters(), gain], 0.05)
        for _ in range(30):
            loss = (gain * waves(z)[0][:, -6:] - target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            k = waves.wave_numbers(z).reshape(2, 3, -1)              # (2, P, cells)
        return waves, (k - k0[:, :, None]).abs().amax(dim=(0, 2))

    free = torch.tensor([[0.3, 0.4, 0.2], [1.1, 1.4, 0.8]])         # none a whole number
    waves, drift = trained(free)
    assert waves.phase_step is None and drift.min() > 0.01          # every wave learned
    waves, drift = trained(init_k)
    assert drift.max() == 0                                          # every wave held
    assert torch.allclose(waves.phase_step.flatten(), torch.tensor([pi, 0.0, pi / 2]))
    with torch.no_grad():
        phases = z[0, -3:, 0, 0]                                  # one phase per wave
        for wave, step in ((0, pi), (2, pi / 2)):
            moved = z.clone()                 # a phase nearer the same snap paints the same
            moved[:, -3 + wave] = torch.round(phases[wave] / step) * step + 0.4 * step
            assert torch.allclose(waves(moved)[0], waves(z)[0], atol=1e-6)
            moved[:, -3 + wave] += 0.2 * step                      # past the next one: not
            assert not torch.allclose(waves(moved)[0], waves(z)[0])
        moved = z.clone()
        moved[:, -2] += 0.01                                     # the other wave: any phase
        assert not torch.allclose(waves(moved)[0], waves(z)[0])


# ----------------------------------------------------------------------------- configs

@torch.no_grad()
def test_pixel_noise_starts_silent_and_paints_fine_detail(tiny_G, noisy_G):
    cfg = noisy_G.cfg
    start = cfg.n_global + cfg.n_local
    assert cfg.layout.n_local == tiny_G.cfg.layout.n_local + cfg.pixel_channels
    z = sample_noise(cfg.layout, 3, 4, seed=1)
    plain = np.delete(z, np.s_[start:start + cfg.pixel_channels], axis=1)
    # at strength 0 (where training starts) a pixel-noise G paints what the plain one does
    silent = Generator(cfg).eval()
    silent.load_state_dict(tiny_G.state_dict(), strict=False)
    assert all(float(s.abs().max()) == 0 for s in silent.noise_strength)
    assert torch.allclose(silent(torch.from_numpy(z)), tiny_G(torch.from_numpy(plain)), atol=1e-6)
    # with strength, new pixel noise alone changes the image
    other = z.copy()
    other[:, start:start + cfg.pixel_channels] = sample_noise(cfg.layout, 3, 4, seed=2)[
        :, start:start + cfg.pixel_channels]
    diff = (noisy_G(torch.from_numpy(other)) - noisy_G(torch.from_numpy(z))).abs()
    assert diff.mean() > 1e-3
    with pytest.raises(ValueError, match="4x4 kernel"):
        tiny_config(pixel_noise=True, kernel=6)


@torch.no_grad()
def test_half_chroma_layer_keeps_brightness_and_takes_colour_off_single_pixels():
    # a stack of height then colour: the colour is channels 1-3, wherever the stack puts it
    torch.manual_seed(3)
    plain = WrapConvTranspose2d(8, 4)
    half = HalfChromaConvTranspose2d(8, 4, colour=slice(1, 4))
    half.load_state_dict(plain.state_dict())                 # the same stored weights
    x = torch.randn(2, 8, 16, 16)                            # white noise: every frequency
    a, b = plain(x), half(x)
    luma = lambda y: torch.einsum("c,bchw->bhw", torch.as_tensor(LUMA_WEIGHTS), y[:, 1:4])
    assert torch.allclose(luma(a), luma(b), atol=1e-6)       # brightness: untouched
    assert torch.allclose(a[:, :1], b[:, :1])                # the height map too
    assert not torch.allclose(a[:, 1:4], b[:, 1:4])
    # the colour itself: plain, as much grain finer than 4 px as coarser; half, little
    fine = lambda y: np.mean([fine_chroma_energy(np.moveaxis(im[1:4].numpy(), 0, -1))
                              for im in y])
    assert fine(b) < 0.05 * fine(a)
    with pytest.raises(ValueError, match="4x4 kernel"):
        tiny_config(half_chroma=True, kernel=6)


def test_half_chroma_generator_paints_brightness_detail_without_colour_grain(tiny_G, chroma_G):
    z = torch.from_numpy(sample_noise(tiny_G.cfg.layout, 4, 4, seed=5))
    with torch.no_grad():
        imgs = [np.moveaxis(G(z)[0].numpy(), 0, -1) * 0.5 + 0.5 for G in (tiny_G, chroma_G)]
    assert fine_chroma_energy(imgs[1]) < 0.1 * fine_chroma_energy(imgs[0])
    # the same weights' brightness: as much fine detail as the plain generator's
    assert 0.5 < top_octave_energy(imgs[1]) / top_octave_energy(imgs[0]) < 2


@torch.no_grad()
def test_checker_free_kernel_is_the_nearest_one_a_resize_convolution_can_apply():
    torch.manual_seed(5)
    w = torch.randn(5, 3, 4, 4)
    p = checker_free_kernel(w)
    # a resize-convolution (nearest 2x, then 3x3) as the 4x4 transposed convolution it equals:
    # each 4x4 tap the sum of the 2 x 2 of 3x3 weights that reach it
    w3 = torch.nn.functional.pad(torch.randn(5, 3, 3, 3), (1, 1, 1, 1))
    k = w3[..., 1:, 1:] + w3[..., 1:, :-1] + w3[..., :-1, 1:] + w3[..., :-1, :-1]
    resize = WrapConvTranspose2d(5, 3, bias=False)
    resize.weight.copy_(k)
    x = torch.randn(2, 5, 8, 8)
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    conv3 = w3[..., 1:-1, 1:-1].transpose(0, 1).flip(-2, -1)   # transposed: flipped
    assert (resize(x) - torch.nn.functional.conv2d(wrap_pad(up, 1), conv3)).abs().max() < 1e-5
    # a resize-convolution's kernel is its own projection, and projecting twice is once
    assert (checker_free_kernel(k) - k).abs().max() < 1e-5
    assert (checker_free_kernel(p) - p).abs().max() < 1e-5
    # least squares: what it takes away is orthogonal to every resize-convolution's kernel
    assert ((w - p) * k).sum((-2, -1)).abs().max() < 1e-4
    assert (w - p).abs().max() > 0.1
    # so, as the layer's: a flat input paints a flat output
    layer, flat = WrapConvTranspose2d(5, 3), torch.ones(1, 5, 6, 6)
    layer.weight.copy_(p)
    assert layer(flat).std((-2, -1)).max() < 1e-5
    # where the free kernel's phases differ: a checkerboard
    layer.weight.copy_(w)
    assert layer(flat).std((-2, -1)).min() > 1e-3


@torch.no_grad()
def test_fine_soft_kernel_takes_energy_from_the_finest_octave_and_keeps_the_rest():
    from texgen.eval.metrics import band_energy
    torch.manual_seed(6)
    w = torch.randn(5, 3, 4, 4)
    assert (fine_soft_kernel(w, 0.0) - w).abs().max() < 1e-5          # alpha 0: as it is
    layer, x = WrapConvTranspose2d(5, 3, bias=False), torch.randn(4, 5, 32, 32)

    def energies(kernel):
        """The output's luma energy in the finest octave and in the octave below it."""
        layer.weight.copy_(kernel)
        out = [np.moveaxis(o.numpy(), 0, -1) for o in layer(x)]
        return (np.mean([band_energy(o, 0.25, 0.5) for o in out]),
                np.mean([band_energy(o, 0.0, 0.25) for o in out]))

    smooth = checker_free_kernel(w)
    fine, coarse = zip(*(energies(fine_soft_kernel(smooth, a)) for a in (0, 0.05, 0.2, 1)))
    assert all(a > b for a, b in zip(fine, fine[1:]))                 # falls with alpha
    assert fine[2] < 0.6 * fine[0] and coarse[2] > 0.75 * coarse[0]   # the finest octave most
    for a in (0.05, 1.0):
        soft = fine_soft_kernel(w, a)
        # the gain at DC is kept: a flat input paints the same flat output
        assert (soft.sum((-2, -1)) - w.sum((-2, -1))).abs().max() < 1e-4
        # the checkerboard is checker_free_kernel's to keep or take: left as it is
        assert ((soft - checker_free_kernel(soft)) - (w - smooth)).abs().max() < 1e-5
        soft = fine_soft_kernel(smooth, a)
        assert (checker_free_kernel(soft) - soft).abs().max() < 1e-5


@torch.no_grad()
def test_chroma_soft_kernel_softens_only_the_colour_less_its_brightness():
    from texgen.runtime.maps import chroma, luma
    torch.manual_seed(7)
    w, colour = torch.randn(5, 4, 4, 4), slice(0, 3)      # a fourth channel: another map's
    for alpha in (0.0, 1.0):
        soft = chroma_soft_kernel(w, colour, alpha)
        assert torch.equal(soft[:, 3], w[:, 3])
        assert (luma(soft[:, colour]) - luma(w[:, colour])).abs().max() < 1e-5   # brightness kept
        # the colour: no checkerboard, and its finest octave softened by alpha
        expected = fine_soft_kernel(checker_free_kernel(chroma(w[:, colour])), alpha)
        assert (chroma(soft[:, colour]) - expected).abs().max() < 1e-5
    assert (chroma_soft_kernel(w, colour, 1.0) - chroma_soft_kernel(w, colour, 0.0)).abs().max() > 0.1


def test_sgan_config_builds_and_paints():
    cfg = tiny_config(n_global=0, n_periodic=0)
    torch.manual_seed(1)
    G = Generator(cfg)
    calibrate_batchnorm(G, cells=2, batches=2, batch=2)
    assert cfg.layout.channels == cfg.n_local
    img = synthesize(torch_runner(G), cfg.layout, cfg.scale, G.margin, 3 * cfg.scale,
                     2 * cfg.scale, seed=0)
    assert img.shape == (3, 2 * cfg.scale, 3 * cfg.scale)
    assert np.isfinite(img).all() and img.std() > 1e-3
    assert np.abs(img).max() <= 1.0                     # tanh range
    assert seam_ratio(img, axis=2) <= 1.5


def test_scale_margin_and_discriminator_shapes(tiny_cfg):
    assert tiny_cfg.scale == 32
    G, D = Generator(tiny_cfg), Discriminator(tiny_cfg)
    assert G.margin >= 1
    G.eval()
    with torch.no_grad():
        out = G(torch.from_numpy(sample_noise(tiny_cfg.layout, 2, 3, seed=0)))
        assert out.shape == (1, 3, 64, 96)
        logits, = D(out)
        assert logits.shape == (1, 1, 2, 3)              # 5 stride-2 convs: /32
    # two scales: the second net judges the patch pooled 2x, so it sees twice as far
    from dataclasses import replace
    D2 = Discriminator(replace(tiny_cfg, d_scales=2))
    with torch.no_grad():
        fine, coarse = D2(torch.zeros(1, 3, 128, 128))
    assert fine.shape == (1, 1, 4, 4) and coarse.shape == (1, 1, 2, 2)


def test_config_round_trips_through_dict(tiny_cfg):
    from texgen.models.psgan import PSGANConfig
    import json
    again = PSGANConfig.from_dict(json.loads(json.dumps(tiny_cfg.to_dict())))
    assert again == tiny_cfg


def test_recalibrated_generator_is_batch_independent(tiny_G):
    """Fixed batch-norm statistics: a sample does not depend on its batch mates."""
    cfg = tiny_G.cfg
    z = torch.from_numpy(sample_noise(cfg.layout, 2, 2, seed=0, batch=2))
    with torch.no_grad():
        both = tiny_G(z)
        one = tiny_G(z[:1])
    assert (both[:1] - one).abs().max().item() < 1e-5


# ----------------------------------------------------------------------------- spectrum

def test_dominant_frequency_of_stripes():
    x = np.arange(128)
    img = np.broadcast_to(np.sin(2 * np.pi * x / 16)[None, :], (128, 128)).copy()
    f = dominant_frequencies(img, 1)
    assert f.shape == (1, 2)
    assert abs(f[0, 0]) < 1e-6
    assert abs(f[0, 1] - 1 / 16) < 1e-6


def test_dominant_frequencies_two_directions_colour():
    y, x = np.mgrid[0:128, 0:128]
    g = np.sin(2 * np.pi * y / 32) + 0.5 * np.sin(2 * np.pi * x / 8)
    img = np.repeat(g[..., None], 3, axis=2)
    f = dominant_frequencies(img, 2)
    np.testing.assert_allclose(f[0], [1 / 32, 0], atol=1e-6)
    np.testing.assert_allclose(f[1], [0, 1 / 8], atol=1e-6)


# ----------------------------------------------------------------------------- resampling

def test_non_cell_size_is_resampled_and_wraps(tiny_G):
    cfg = tiny_G.cfg
    assert torus_cells(100, 70, cfg.scale) == (2, 3)
    img = synthesize(torch_runner(tiny_G), cfg.layout, cfg.scale, tiny_G.margin, 100, 70, seed=0)
    assert img.shape == (3, 70, 100)
    assert seam_ratio(img, axis=2) <= 1.5
    assert seam_ratio(img, axis=1) <= 1.5


# ----------------------------------------------------------------------------- noise

def test_sample_noise_channel_layout():
    layout = NoiseLayout(3, 4, 2)
    z = sample_noise(layout, 5, 6, seed=7, batch=2)
    assert z.shape == (2, 9, 5, 6) and z.dtype == np.float32
    glob, local, phase = z[:, :3], z[:, 3:7], z[:, 7:]
    # global code: one vector per sample, constant over space, in [-1, 1]
    assert np.all(glob == glob[:, :, :1, :1])
    assert not np.allclose(glob[0, :, 0, 0], glob[1, :, 0, 0])
    assert np.abs(glob).max() <= 1
    # local noise: varies per cell, in [-1, 1]
    assert local.min() >= -1 and local.max() <= 1
    assert local.std() > 0.3
    assert len(np.unique(local)) == local.size
    # phases: in [0, 2pi), constant over space
    assert phase.min() >= 0 and phase.max() < 2 * np.pi
    assert np.all(phase == phase[:, :, :1, :1])
    np.testing.assert_array_equal(z, sample_noise(layout, 5, 6, seed=7, batch=2))
    assert not np.array_equal(z, sample_noise(layout, 5, 6, seed=8, batch=2))
    with pytest.raises(ValueError):
        sample_noise(layout, 0, 3)


def test_given_codes_keep_the_rest_of_the_stream():
    layout = NoiseLayout(3, 2, 1)
    a = sample_noise(layout, 3, 4, seed=1)
    codes = np.array([[0.1, -0.2, 0.3]], np.float32)
    b = sample_noise(layout, 3, 4, seed=1, codes=codes)
    np.testing.assert_array_equal(b[:, 3:], a[:, 3:])
    np.testing.assert_allclose(b[0, :3, 2, 1], codes[0])


def test_cyclic_morph_sums_to_one_and_wraps():
    h, w = 3, 16
    m = cyclic_morph(h, w)
    assert m.shape == (2, h, w)
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-6)
    assert m.min() >= 0 and m.max() <= 1
    np.testing.assert_allclose(m[:, :, 0], [[1] * h, [0] * h], atol=1e-6)   # starts at code A
    assert m[1, 0, w // 2] == pytest.approx(1.0)                             # B halfway
    step = np.abs(np.diff(m, axis=2)).max()
    assert np.abs(m[:, :, -1] - m[:, :, 0]).max() <= step + 1e-6             # wraps smoothly
    assert np.abs(m[:, :, -1] - m[:, :, 0]).max() < 0.1


def test_morph_blends_codes_in_noise():
    layout = NoiseLayout(2, 1, 1)
    codes = np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32)
    m = cyclic_morph(2, 8)
    z = sample_noise(layout, 2, 8, seed=0, codes=codes, morph=m)
    np.testing.assert_allclose(z[0, :2, 0, 0], codes[0], atol=1e-6)
    np.testing.assert_allclose(z[0, :2, 1, 4], codes[1], atol=1e-6)
    with pytest.raises(ValueError):
        sample_noise(layout, 2, 8, seed=0, morph=m)


def test_tile_shape_is_even():
    from texgen.runtime.tiling import tile_shape
    assert tile_shape(32, 32, 24) == (16, 16)          # two even tiles, not 24 + 24
    assert tile_shape(64, 40, 32) == (32, 20)
    assert tile_shape(5, 7, 2) == (2, 2)
    assert tile_shape(16, 16, 24) == (16, 16)
    assert tile_shape(7, 9, None) == (7, 9)
