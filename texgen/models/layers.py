"""Building blocks that keep a generator seamless: everything wraps around a torus."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from texgen.runtime.maps import chroma


def wrap_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Pad the last two dims circularly by p cells (explicit slices export to any ONNX opset)."""
    if p == 0:
        return x
    x = torch.cat([x[..., -p:, :], x, x[..., :p, :]], dim=-2)
    return torch.cat([x[..., :, -p:], x, x[..., :, :p]], dim=-1)


class WrapConv2d(nn.Conv2d):
    """Stride-1 convolution with circular padding: output pixel (i, j) sees a torus neighbourhood."""

    def __init__(self, cin: int, cout: int, k: int = 3, bias: bool = True):
        super().__init__(cin, cout, k, padding=0, bias=bias)
        self.wrap = k // 2

    def forward(self, x):
        return super().forward(wrap_pad(x, self.wrap))

    def forward_valid(self, x):
        """No wrap: x already carries `wrap` cells of real context on each side (a tile cut
        from the torus); the output is that many cells smaller on each side."""
        return super().forward(x)


class WrapConvTranspose2d(nn.ConvTranspose2d):
    """Stride-2 transposed convolution on a torus: h x w -> 2h x 2w, exactly periodic.

    PyTorch cannot pad a transposed convolution circularly, so we wrap the input by one cell
    and let `padding` crop the output back to 2h x 2w. With k=4, s=2 each input cell paints
    output rows 2i-1 .. 2i+2, so one wrapped cell on each side is all the border needs.
    A 4x4 kernel (divisible by the stride) also avoids the checkerboard 5x5 kernels leave.
    """

    def __init__(self, cin: int, cout: int, k: int = 4, bias: bool = True):
        assert k % 2 == 0, "kernel must be even so that every output pixel gets the same taps"
        self.wrap = k // 4 + (k % 4 > 0)          # input cells needed on each side
        super().__init__(cin, cout, k, stride=2, padding=2 * self.wrap + k // 2 - 1, bias=bias)

    def forward(self, x):
        return self._transpose(wrap_pad(x, self.wrap))

    def _transpose(self, x):
        return F.conv_transpose2d(x, self.kernel(), self.bias, self.stride, self.padding)

    def kernel(self) -> torch.Tensor:
        """The (cin, cout, k, k) weights the layer applies: its own, unless a subclass
        derives them from it."""
        return self.weight

    @torch.no_grad()
    def plain(self) -> "WrapConvTranspose2d":
        """The layer as a plain one holding the kernel it applies (itself, when that is its
        weight): an export then stores the kernel, not the arithmetic that derives it."""
        if type(self) is WrapConvTranspose2d:
            return self
        out = WrapConvTranspose2d(self.in_channels, self.out_channels, self.kernel_size[0],
                                  bias=self.bias is not None)
        out.weight.copy_(self.kernel())
        if self.bias is not None:
            out.bias.copy_(self.bias)
        return out

    def valid_size(self, n: int) -> int:
        """Output px of forward_valid for n input cells."""
        return 2 * n - 2 if self.kernel_size == (4, 4) else 2 * (n - 2 * self.wrap)

    def forward_valid(self, x):
        """No wrap: x carries real context (a tile cut from the torus), and the output is the
        valid_size(n) px that its n cells fully determine.

        For the 4x4 kernel this is computed as one stride-1 2x2 convolution whose 4 * cout
        channels are the four output phases (row and column parity), then pixel_shuffle.
        Same sums as the transposed convolution, but onnxruntime runs Conv in its blocked
        kernels instead of ConvTranspose's GEMM + col2im (1.7x less time in the convolutions,
        measured on the default size; DepthToSpace gives some of it back). Ordering the
        phases odd-then-even makes the shuffled grid line up with the output with no
        slicing, one pixel wider on each side than ConvTranspose's valid output: real
        pixels, which the next layer uses as context (so a tile needs only one cell of it).
        """
        if self.kernel_size != (4, 4):
            return self._transpose(x)
        w, b = self.phase_weights()
        return F.pixel_shuffle(F.conv2d(x, w, b), 2)

    # taps of the 4-tap kernel that a 2-cell window (x[p], x[p+1]) applies for an odd output
    # row (it lands on row 2p) and for an even one (row 2p + 1) of the shuffled grid
    _PHASE_TAPS = ((2, 0), (3, 1))

    def phase_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(4 * cout, cin, 2, 2) conv weights, channel c * 4 + 2 * row_phase + col_phase in
        pixel_shuffle's order, and the bias repeated for each phase."""
        t = self._PHASE_TAPS
        w = self.kernel()                                     # (cin, cout, 4, 4)
        phases = [w[:, :, t[a]][:, :, :, t[b]] for a in (0, 1) for b in (0, 1)]
        w = torch.stack(phases, 2).permute(1, 2, 0, 3, 4)      # (cout, 4, cin, 2, 2)
        w = w.reshape(-1, *w.shape[2:])
        # stack + flatten (not repeat_interleave): exports as a constant the ONNX exporter folds
        b = torch.stack((self.bias,) * 4, dim=1).flatten() if self.bias is not None else None
        return w, b


class HalfChromaConvTranspose2d(WrapConvTranspose2d):
    """The output layer, with colour kept as a camera keeps it: brightness at every pixel,
    colour at half resolution. Of its 4x4 kernel, the part that reaches the colour
    channels' luma (Rec. 709) is its own; the rest, the chroma (each channel less its luma),
    is replaced by the kernel's mean chroma gain spread with the bilinear weights
    [1, 3, 3, 1] / 4 in each direction: the chroma of the output is then the input grid's,
    bilinearly upsampled, so no pixel's colour departs from its neighbours'.

    Why: a PSGAN's last transposed convolution gives each colour channel its own
    high-frequency mix of the hidden features, a per-pixel pink-green grain (eval's
    chroma_energy: tile01 27x the photo's fine colour, wallpaper001 96x) that neither D
    nor the VGG loss charges; a photo has almost none (demosaicing and JPEG keep colour
    coarser than brightness). A loss caps it (SpectrumLoss.chroma_excess); here the
    generator cannot paint it. Both raised texture_distance on most photos tried
    (benchmarks/out/quality_ab.md, sixteenth and seventeenth sessions), so neither is a
    preset's yet. Only the 4x4 kernel; the weights stored are the plain ones, the derived
    kernel is what it applies (and what an ONNX export folds into a constant)."""

    def __init__(self, cin: int, cout: int, colour: slice, k: int = 4):
        if k != 4:
            raise ValueError("half-resolution colour needs the 4x4 kernel")
        super().__init__(cin, cout, k)
        self.colour = colour

    def kernel(self) -> torch.Tensor:
        return half_chroma_kernel(self.weight, self.colour)


def half_chroma_kernel(w: torch.Tensor, colour: slice) -> torch.Tensor:
    """A 4x4 stride-2 kernel (cin, cout, 4, 4) whose colour channels (`colour`, of cout) keep
    their luma's taps and have their chroma replaced by its mean gain over the four output
    phases spread with the bilinear weights [1, 3, 3, 1] / 4: the output's chroma is then
    the input's bilinearly upsampled (HalfChromaConvTranspose2d, train/cleanup.py)."""
    b = w.new_tensor([1.0, 3.0, 3.0, 1.0]) / 4                # each phase's two taps sum to 1
    # the chroma's mean over the four phases of each phase's gain (its 2 x 2 taps' sum)
    return _recoloured(w, colour, lambda grain: grain.sum((-2, -1), keepdim=True) / 4
                       * torch.outer(b, b))


def chroma_soft_kernel(w: torch.Tensor, colour: slice, alpha: float) -> torch.Tensor:
    """A 4x4 stride-2 kernel (cin, cout, 4, 4) whose colour channels (`colour`, of cout) keep
    their luma's taps and have their chroma's 1 px checkerboard taken out (checker_free_kernel)
    and its finest octave softened (fine_soft_kernel): half_chroma_kernel's cure for colour
    grain, by degrees (train/cleanup.py). A photo's colour has neither: demosaicing and JPEG
    keep colour coarser than brightness. Without the checkerboard's part wallpaper001's
    colour grain fell 107 -> 69 at 1; with it, 107 -> 16, for the same texture_distance."""
    return _recoloured(w, colour, lambda grain: fine_soft_kernel(checker_free_kernel(grain), alpha))


def _recoloured(w: torch.Tensor, colour: slice, recolour) -> torch.Tensor:
    """w with its colour channels' chroma (the kernel's colour less its luma) replaced by
    recolour(chroma), their luma's taps and the other channels as they were."""
    grain = chroma(w[:, colour])
    return torch.cat([w[:, :colour.start], w[:, colour] - grain + recolour(grain),
                      w[:, colour.stop:]], dim=1)


def checker_free_kernel(w: torch.Tensor) -> torch.Tensor:
    """The 4x4 stride-2 kernel nearest to w (least squares, per channel pair) that paints no
    checkerboard: w less its alternating part (taps weighted +1, -1, +1, -1) along each axis.
    Its response is then zero on the output's Nyquist lines, every output phase has the
    same gain, and it is a kernel a resize-convolution (nearest 2x, then 3x3: Odena, Dumoulin
    & Olah 2016, "Deconvolution and checkerboard artifacts") can apply: those are exactly the
    4x4 kernels with no alternating part. (Trained in as the output layer, a
    resize-convolution cost wallpaper001, metal002 and wall_brick01 0.03-0.06 of
    texture_distance: benchmarks/out/quality_ab.md, the eighteenth session; applied after
    training, train/cleanup.py, it costs only some photos.)"""
    p = _checker_free_taps(w)
    return p @ w @ p


def _checker_free_taps(w: torch.Tensor) -> torch.Tensor:
    """The 4 x 4 projection of a kernel's taps along one axis onto those with no
    alternating part (checker_free_kernel applies it along both)."""
    v = w.new_tensor([1.0, -1.0, 1.0, -1.0]) / 2
    return torch.eye(4, dtype=w.dtype, device=w.device) - torch.outer(v, v)


def fine_soft_kernel(w: torch.Tensor, alpha: float) -> torch.Tensor:
    """A 4x4 stride-2 kernel (cin, cout, 4, 4) with less response in the output's finest
    octave (0.25-0.5 cycles per px, eval's fine_energy: per-pixel speckle), by `alpha`.

    Along each axis the taps k become the k' that minimise, over the frequency response,
    k' - k's energy below 0.25 cycles per px plus alpha times k''s own energy above, with
    the taps' sum (the kernel's gain at DC) kept exactly. Four taps cannot cut a band
    sharply: alpha 0.05 took tile01's fine_energy 1.22 -> 1.03 for 0.5 % of
    texture_distance; at 0.2 its grout was a little softer at 6x. Only the kernel's part
    without a checkerboard (checker_free_kernel) is smoothed, and it stays without one; the
    rest, the 1 px checkerboard, is left as it is, so the two are independent cures
    (train/cleanup.py)."""
    d = torch.arange(4, dtype=torch.float64)
    d = d[:, None] - d[None, :]
    # the tap-by-tap Gram matrices of the response over the two half-bands:
    # the integral of cos(2 pi f d) over f in [0, 0.25], and over [0.25, 0.5]
    low = 0.25 * torch.sinc(d / 2)
    high = 0.5 * torch.eye(4, dtype=torch.float64) - low   # [0, 0.5]'s is 0.5 * sinc(d)
    b = low + alpha * high
    one = torch.ones(4, dtype=torch.float64)
    nearest, u = torch.linalg.solve(b, low), torch.linalg.solve(b, one)
    # the constraint one @ k' = one @ k, by a Lagrange multiplier along b^-1 one
    m = nearest + torch.outer(u, one - one @ nearest) / (one @ u)
    p = _checker_free_taps(m)
    m = (p @ m @ p).to(w)
    smooth = checker_free_kernel(w)
    return m @ smooth @ m.T + (w - smooth)


class PeriodicWaves(nn.Module):
    """Replace the phase channels of Z with plane waves whose wave numbers an MLP learns.

    For each of P waves, k = (k_y, k_x) in radians per noise cell comes from an MLP of the
    global code (so each texture of a manifold has its own periods), or from a free learned
    vector when there are no global channels (SGAN-like single textures). Waves are emitted as
    quadrature pairs sin and cos: a period shorter than a cell (bricks are often 15 px, a cell
    is 32 px) is aliased on the cell grid, but with both sin and cos the upsampling convs can
    still place the pattern at the right sub-cell position with a fixed linear filter. (Trained,
    they need not: a tile01 model with every wave held kept its grout on cell boundaries at
    each of eight phases of its pi-per-cell tile wave; quality_ab.md, twelfth session.)

    At generation `torus = (H, W)` cells rounds each wave number so a whole number of periods
    fits the canvas; `coords = (ys, xs)` give the canvas coordinates (in cells, wrapped into
    the torus) of this tensor's rows and columns, so a tile of a big canvas gets exactly the
    same waves as the one-shot canvas.

    along: each wave keeps the direction it starts in and learns only its length (the MLP
    gives P lengths, not 2P components). Free, tile01's grout wave leaned to k_y = -0.2 pi
    per cell, a lean no 8-cell training patch shows; rounded on a 16-cell canvas it became a
    full period of drift, and the tile grid shifted half a tile along staircase fronts. Along,
    the grid is straight, but the lengths drift instead (oblong tiles, ghost grout lines), and
    texture_distance rose on three photos of five (benchmarks/out/quality_ab.md, the eleventh
    session). Since grid holds the waves of those photos, along acts only where no wave is
    held: there, on wall_brick01, it kept the bricks' wave from leaning into a staircase of
    head joints (period_error 0.065 -> 0.031 and 0.066 -> 0.020 on two seeds; the
    twenty-first session), and the fast preset has it.

    grid: a wave whose period is a whole number n <= grid of cells on both axes (tile01's 64
    px tiles: pi per cell, n = 2) meets the cell grid the same way in every cell it repeats;
    it keeps its starting number (free, it leaned and the tiles staircased), and its phase
    is snapped to a multiple of 2 pi / n. Drawn at random, a phase between two snaps left
    the trained generator unsure which cell boundary gets the grout, and it painted ghost
    grout on both. Once one wave is held, every wave is (its phase free unless it is a grid
    wave too): metal002's five free waves drifted by up to pi / 4 per cell while their held
    sum could not follow, and its period_error stayed at 0.064; all held, 0.000 on two
    seeds, wood003's bands stopped leaning, and wallpaper001 0.082 -> 0.072
    (benchmarks/out/quality_ab.md, the fourteenth and fifteenth sessions). The two slow
    waves (16 cells long) that train/psgan.grid_waves adds give back the slow signal that
    holding takes away (free waves drifted into one). At grid 4, tile01 painted a straight
    grid with no ghost grout (period_error 0.128 -> 0), and wall_brick01 (1.6-cell bricks)
    has no grid wave: nothing is held (benchmarks/out/quality_ab.md, the thirteenth
    session). The fast preset's, at 4, since the fourteenth (benchmarks/out/quality.md).

    levels: the same waves are also made at the resolution of hidden layers 1..levels (2,
    4, ... px per cell), each pixel at its own position inside its cell, for the generator
    to take in beside that layer's features (psgan.PSGANConfig.wave_layers). On the cell
    grid alone a wave shorter than two cells is aliased: wall_brick01's bricks, 1.6 cells
    long, give the cells the same values as a wave 2.7 cells long running the other way, and
    metal002 at 0.8x, 0.79 cells, those of one 3.7 cells long; no filter of the cells can
    tell where inside a cell the line falls. Given the wave at every layer, a line is where
    the wave's phase is, down to periods of two pixels of the finest hidden layer. It
    brought two such lattices of three closer, and a lattice on the grid not: off in the
    presets (train/psgan.PRESETS; benchmarks/out/quality_ab.md, the twenty-seventh session).

    shared: the waves' numbers are one learned set for every sample, as without a global
    code, though there is one. Trained on one photo there is no manifold for the code to
    pick periods in, but the MLP moves them with it all the same, and its mean drifts off
    its bias (the ReLU layer's output has a mean of its own that the last layer's weights
    learn to use): on wall_brick01 the 51.2 px brick wave painted at 9.4 to 9.9 cycles per
    512 px by seed (the photo's 10.0; the bias 9.96) and the 24 px diagonal at 19.2 to 20.1
    (21.2), where shared kept 10.05 and 21.05 (both at iteration 400), so a canvas rounding
    the brick wave to 9 cycles painted some seeds' bricks 10 % long. Training on several
    photos leaves it off (train/psgan.configure): there the code picks each one's periods.
    """

    def __init__(self, n_global: int, n_periodic: int, hidden: int = 60, init_k=None,
                 along: bool = False, grid: int = 0, levels: int = 0, shared: bool = False):
        super().__init__()
        # shared: one learned set for every sample, as with no global code (see above)
        self.n_code = 0 if shared else n_global
        self.n_periodic, self.along = n_periodic, along
        self.levels = levels if n_periodic else 0
        if n_periodic == 0:
            return
        k0 = torch.as_tensor(init_k if init_k is not None else default_wave_numbers(n_periodic),
                             dtype=torch.float32).reshape(2, n_periodic)
        # not saved, like `direction`: both follow from init_k and grid, which the config holds
        step = grid_steps(k0, grid)
        snapped = bool((step > 0).any())
        self.register_buffer("phase_step", step.reshape(1, n_periodic, 1, 1) if snapped else None,
                             persistent=False)
        # one grid wave holds them all: a free wave drifts and the held ones cannot follow
        self.register_buffer("k_start", k0.reshape(1, 2 * n_periodic, 1, 1) if snapped else None,
                             persistent=False)
        if along:
            length = k0.norm(dim=0)
            # not saved: it follows from init_k, which the config holds
            direction = k0 / length.clamp_min(1e-12)        # a zero wave stays zero
            self.register_buffer("direction", direction.reshape(1, 2 * n_periodic, 1, 1),
                                 persistent=False)
            k0 = length
        k0 = k0.flatten()
        if self.n_code:
            self.mlp = nn.Sequential(nn.Conv2d(n_global, hidden, 1), nn.ReLU(),
                                     nn.Conv2d(hidden, len(k0), 1))
            # start every texture at the exemplar's wave numbers; the global code nudges them
            nn.init.normal_(self.mlp[2].weight, std=0.02)
            with torch.no_grad():
                self.mlp[2].bias.copy_(k0)
        else:
            self.k = nn.Parameter(k0.reshape(1, len(k0), 1, 1))

    @property
    def out_channels_extra(self) -> int:
        return self.n_periodic          # each phase channel becomes a sin and a cos channel

    def wave_numbers(self, z: torch.Tensor) -> torch.Tensor:
        """(B, 2P, h, w): k_y for waves 0..P-1, then k_x."""
        size = (z.shape[0], -1, z.shape[2], z.shape[3])
        if self.k_start is not None:    # wave_grid: every wave held at its starting number
            return self.k_start.expand(*size)
        k = self.mlp(z[:, : self.n_code]) if self.n_code else self.k.expand(*size)
        return self.direction * torch.cat([k, k], 1) if self.along else k

    def forward(self, z, coords=None, torus=None):
        """(z with its P phase channels replaced by the waves' sin and cos, [the waves at
        hidden layer l = 1..levels: (B, 2P, h * 2**l, w * 2**l)]). coords: the rows' and
        columns' cell coordinates (default 0, 1, ...); torus: round k onto it (see above)."""
        P = self.n_periodic
        if P == 0:
            return z, []
        h, w = z.shape[-2], z.shape[-1]
        k = self.wave_numbers(z)
        ky, kx = k[:, :P], k[:, P:]
        if torus is not None:
            # a whole number of periods on the canvas: k = 2 pi n / N
            two_pi = 2 * math.pi
            ky = torch.round(ky * torus[0] / two_pi) * two_pi / torus[0]
            kx = torch.round(kx * torus[1] / two_pi) * two_pi / torus[1]
        if coords is None:
            coords = (torch.arange(h, dtype=z.dtype, device=z.device),
                      torch.arange(w, dtype=z.dtype, device=z.device))
        phase = z[:, -P:]
        if self.phase_step is not None:
            step = self.phase_step
            phase = torch.where(step > 0, torch.round(phase / step.clamp_min(1e-6)) * step, phase)
        waves = [_sin_cos(ky, kx, phase, *coords, 1)]
        for level in range(1, self.levels + 1):
            n = 2 ** level
            up = [F.interpolate(t, scale_factor=n, mode="nearest") for t in (ky, kx, phase)]
            waves.append(_sin_cos(*up, *coords, n))
        return torch.cat([z[:, :-P], waves[0]], dim=1), waves[1:]


def _sin_cos(ky, kx, phase, ys, xs, n: int) -> torch.Tensor:
    """sin and cos of k . (y, x) + phase at n x n pixels per cell of rows ys and columns xs
    (in cells): a pixel sits at its centre, (i + 0.5) / n - 0.5 cells from its cell's, so
    that the centre of its n x n block is the cell's own coordinate at every n."""
    inside = (torch.arange(n, dtype=ys.dtype, device=ys.device) + 0.5) / n - 0.5
    y = (ys.reshape(-1, 1) + inside).reshape(1, 1, -1, 1)
    x = (xs.reshape(-1, 1) + inside).reshape(1, 1, 1, -1)
    arg = ky * y + kx * x + phase
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def grid_steps(k: torch.Tensor, grid: int) -> torch.Tensor:
    """(P,) phase snap 2 pi / n of each wave of k (2, P) whose period is a whole number n <=
    grid of cells on both axes (the smallest such n), 0 for the others."""
    step = torch.zeros(k.shape[1])
    for j in range(k.shape[1]):
        for n in range(1, grid + 1):
            turns = n * k[:, j] / (2 * math.pi)
            if float((turns - turns.round()).abs().max()) < 0.01:
                step[j] = 2 * math.pi / n
                break
    return step


def default_wave_numbers(n_periodic: int) -> torch.Tensor:
    """Official PSGAN start when no exemplar spectrum is known: axis-aligned, 0.5 pi..pi per cell."""
    k = torch.zeros(2, n_periodic)
    for i in range(n_periodic):
        band = math.pi * (0.5 * (i // 2 + 1) / max(1, n_periodic // 2) + 0.5)
        k[i % 2, i] = band                  # even waves vertical, odd waves horizontal
    return k
