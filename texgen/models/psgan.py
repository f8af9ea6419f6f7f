"""PSGAN (Bergmann, Jetchev & Vollgraf 2017) and SGAN, its special case without global or
periodic channels: a fully convolutional generator that paints a texture of any size from a
noise tensor Z (see runtime/noise.py), and a patch discriminator.

Z (B, G+L+P, h, w) --PeriodicWaves--> (B, G+L+2P, h, w) --5 x [WrapConvT 2x, BN, ReLU]-->
image (B, C, 32h, 32w), tanh in [-1, 1]. Every layer wraps around, so the image is a torus.

With pixel_noise, Z also carries one noise value per pixel of every hidden layer (packed into
its cell like texnet's levels: 4 + 16 + 64 + 256 more local channels for four), added to
that layer's batch-normed output with a learned strength per feature (StyleGAN's noise
inputs, Karras et al. 2019). Without it every pixel is a function of a few cells' noise
only, the same function in every cell, and the samples show it: a fine lattice the size of a
cell. The noise alone does not remove that lattice (train/descriptor.LatticeLoss does); it
gives the generator detail that is not tied to the cell, so the loss costs less texture.

With half_chroma, the output layer keeps colour at half resolution and brightness at full
(layers.HalfChromaConvTranspose2d), as a camera does: without it the last transposed
convolution paints each colour channel's finest detail apart, a per-pixel colour grain.

With wave_layers, every layer after the first also takes in the periodic waves made at its
own resolution (layers.PeriodicWaves' levels), beside the features of the layer before: a
lattice whose period is no whole number of cells, aliased on the cell grid, can then be
placed inside a cell. Off in the presets (train/psgan.PRESETS says what it measured).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from texgen.models.layers import HalfChromaConvTranspose2d, PeriodicWaves, WrapConvTranspose2d
from texgen.kinds import check_kind, kind_of
from texgen.runtime.maps import map_slices
from texgen.runtime.noise import NoiseLayout


@dataclass
class PSGANConfig:
    n_global: int = 60          # texture-manifold code, constant per sample
    n_local: int = 30           # i.i.d. noise per cell
    n_periodic: int = 6         # plane waves (each emitted as sin + cos)
    wave_hidden: int = 60       # hidden units of the wave-number MLP
    g_widths: tuple = (512, 256, 128, 64)   # channels after each upsampling but the last
    d_widths: tuple = (64, 128, 256, 512)   # channels of the strided discriminator convs
    kernel: int = 4             # transposed-conv kernel (4: no checkerboard at stride 2)
    channels: int = 3           # output channels: 3 for colour; more for map stacks
    maps: list = field(default_factory=lambda: ["color"])   # what the channels mean, in order
    init_k: list | None = None  # (2, P) starting wave numbers, radians per cell [k_y; k_x]
    wave_along: bool = False    # each wave learns its length only, along init_k's direction
                                # (layers.PeriodicWaves; the fast preset's, where no wave is
                                # held: train/psgan.PRESETS, quality_ab.md, 21st session)
    wave_grid: int = 0          # waves of a whole number <= this of cells: phases snapped, and
                                # when there is one every wave held (layers.PeriodicWaves,
                                # train/psgan.grid_waves; 0: off; the fast preset's 4:
                                # quality_ab.md, 13th-15th sessions, and quality.md)
    zoom: float = 1.0           # the model's px per exemplar px: the exemplar was resampled by
                                # it to fit its lattice to the cell grid (train/psgan.grid_zoom),
                                # and textures are resampled back (runtime/canvas.Canvas)
    d_scales: int = 1           # the discriminator judges the patch at 1x, 1/2x, ...: the coarse
                                # views see a lattice of periods the full-size one cannot
    kind: str | None = None     # "psgan" or "sgan" (texgen/kinds.py); None: what the channels say
    pixel_noise: bool = False   # per-pixel noise into every hidden layer (see above)
    half_chroma: bool = False   # colour at half resolution, brightness at full: no per-pixel
                                # colour grain (layers.HalfChromaConvTranspose2d)
    wave_layers: bool = False   # the waves at every hidden layer's resolution too, each
                                # later layer's input (layers.PeriodicWaves' levels; above)
    wave_shared: bool = False   # one set of wave numbers for every sample: the global code
                                # does not move them (layers.PeriodicWaves' shared; the fast
                                # preset's for one photo: train/psgan.PRESETS, configure)

    def __post_init__(self):
        self.kind = check_kind(kind_of(asdict(self)), "psgan")
        if self.kind == "sgan" and (self.n_global or self.n_periodic):
            raise ValueError("an SGAN has neither global nor periodic channels")
        # pixel_noise: its valid layers' crop; half_chroma: its kernel's arithmetic
        for name in ("pixel_noise", "half_chroma"):
            if getattr(self, name) and self.kernel != 4:
                raise ValueError(f"{name} needs the 4x4 kernel")

    @property
    def layout(self) -> NoiseLayout:
        return NoiseLayout(self.n_global, self.n_local + self.pixel_channels, self.n_periodic)

    @property
    def pixel_channels(self) -> int:
        """Local noise channels per cell that pixel_noise adds: 4**i for hidden layer i."""
        return sum(4 ** i for i in range(1, len(self.g_widths) + 1)) if self.pixel_noise else 0

    @property
    def scale(self) -> int:
        """Output pixels per noise cell."""
        return 2 ** (len(self.g_widths) + 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PSGANConfig":
        d = dict(d)
        # resize_conv (the last layers as resize-convolutions) was an option, off in every
        # preset, until the clean-up's projection replaced it: models saved with it off load
        if d.pop("resize_conv", 0):
            raise ValueError("trained with resize_conv, an option texgen no longer has: "
                             "train it again")
        for key in ("g_widths", "d_widths"):
            d[key] = tuple(d[key])
        return cls(**d)


class Generator(nn.Module):
    def __init__(self, cfg: PSGANConfig):
        super().__init__()
        self.cfg = cfg
        self.waves = PeriodicWaves(cfg.n_global, cfg.n_periodic, cfg.wave_hidden, cfg.init_k,
                                    cfg.wave_along, cfg.wave_grid,
                                    len(cfg.g_widths) if cfg.wave_layers else 0,
                                    cfg.wave_shared)
        widths = [cfg.layout.channels - cfg.pixel_channels + self.waves.out_channels_extra,
                  *cfg.g_widths]
        extra = 2 * cfg.n_periodic if self.waves.levels else 0    # each later layer's waves
        layers = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            # no conv bias: batch norm's shift replaces it
            layers += [WrapConvTranspose2d(cin + (extra if i else 0), cout, cfg.kernel, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        colour = map_slices(cfg.maps).get("color")     # a stack without colour: nothing to do
        out = (HalfChromaConvTranspose2d(widths[-1] + extra, cfg.channels, colour)
               if cfg.half_chroma and colour else
               WrapConvTranspose2d(widths[-1] + extra, cfg.channels, cfg.kernel))
        layers += [out, nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.net.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.02)            # DCGAN / official init
        # strength per feature of each hidden layer's pixel noise; 0 at first, so the noise
        # comes in only as far as training asks for it
        self.noise_strength = nn.ParameterList(
            nn.Parameter(torch.zeros(1, w, 1, 1)) for w in (cfg.g_widths if cfg.pixel_noise else ()))

    def forward(self, z, coords=None, torus=None):
        """The whole torus z (B, C, h, w) -> (B, channels, h*scale, w*scale); every layer wraps."""
        return self._run(*self.waves(z, coords, torus), valid=False)

    def _run(self, x, fine, valid: bool):
        """The layers on waves(z) = [global, local, pixel noise, waves] and, with wave_layers,
        the waves at hidden layer 1, 2, ... (fine); valid: interior()'s."""
        n = self.cfg.pixel_channels
        if n:
            start = self.cfg.n_global + self.cfg.n_local
            pixels, x = x[:, start:start + n], torch.cat([x[:, :start], x[:, start + n:]], 1)
        level = 0
        for layer in self.net:
            if isinstance(layer, nn.ReLU):          # the end of hidden layer `level`
                level += 1
                if self.noise_strength:
                    # its pixel noise, after its batch norm (which export folds into the
                    # convolution, so nothing may come between them)
                    x = x + self.noise_strength[level - 1] * _eaten(
                        self._pixel_noise(pixels, level), level, valid)
                x = layer(x)
                if fine:                            # the next layer takes its waves in too
                    x = torch.cat([x, _eaten(fine[level - 1], level, valid)], 1)
                continue
            valid_conv = valid and isinstance(layer, WrapConvTranspose2d)
            x = layer.forward_valid(x) if valid_conv else layer(x)
        return x

    @staticmethod
    def _pixel_noise(pixels, level: int):
        """(B, 1, h * 2**level, w * 2**level) noise of hidden layer `level` from its 4**level
        channels per cell."""
        first = sum(4 ** i for i in range(1, level))
        return F.pixel_shuffle(pixels[:, first:first + 4 ** level], 2 ** level)

    def interior(self, z, coords, torus):
        """Paint a tile: z (B, C, h + 2m, w + 2m) is h x w cells plus m = self.margin cells of
        their real neighbours on each side (runtime/tiling.py cuts them from the torus), so no
        layer needs to wrap: each runs 'valid' on the context it was given, and the result is
        the (B, channels, h*scale, w*scale) interior, equal to those pixels of forward() on the
        whole torus. This is what the painters and the ONNX graph run: it does no work on
        context that would be thrown away and makes no padded copies (with the phase convs
        of WrapConvTranspose2d.forward_valid, onnxruntime paints the default-size generator
        1.2x faster than forward() on a wrapped tile, benchmarks/out/runtime_speed.md)."""
        x = self._run(*self.waves(z, coords, torus), valid=True)
        c = self.interior_crop
        return x[..., c:x.shape[-2] - c, c:x.shape[-1] - c]

    def _valid_size(self, cells: int) -> int:
        """Output px of interior()'s layers (before the crop) for a tile of `cells` cells."""
        for layer in self.net:
            if isinstance(layer, WrapConvTranspose2d):
                cells = layer.valid_size(cells)
        return cells

    @property
    def margin(self) -> int:
        """Noise cells of context a tile needs on each side: the fewest with which the valid
        layers still cover a whole cell."""
        m = 0
        while self._valid_size(1 + 2 * m) < self.cfg.scale:
            m += 1
        return m

    @property
    def interior_crop(self) -> int:
        """Pixels per side that interior() still holds beyond the tile once the valid layers
        have eaten their context (the margin is rounded up to whole cells)."""
        crop, odd = divmod(self._valid_size(1 + 2 * self.margin) - self.cfg.scale, 2)
        assert crop >= 0 and not odd, "margin too small for the generator's receptive field"
        return crop


def _eaten(x, level: int, valid: bool):
    """x at hidden layer `level` (2**level px per cell) of a whole torus; valid: less the
    2**level - 1 px per side that `level` valid layers have eaten (each eats 1 px of its own
    resolution, doubled by every later layer)."""
    c = 2 ** level - 1
    return x[..., c:-c, c:-c] if valid else x


class Discriminator(nn.Module):
    """Patch discriminator: 5 strided 5x5 convs, LeakyReLU 0.2, batch norm inside, a map of
    patch logits; with cfg.d_scales > 1, one such net per scale, judging the patch average-
    pooled 2x, 4x, ...: the full-size net's logits each see 125 px, the half-size one's 250 px
    of the patch, so it can judge a layout of periods (tiles, courses) one tile wide misses.

    Zero padding here on purpose: it judges crops of photos, which are not tori.
    forward returns a list of logit maps, finest scale first.
    """

    def __init__(self, cfg: PSGANConfig):
        super().__init__()
        self.net = self._patch_net(cfg)
        self.coarse = nn.ModuleList(self._patch_net(cfg) for _ in range(cfg.d_scales - 1))

    @staticmethod
    def _patch_net(cfg: PSGANConfig) -> nn.Sequential:
        widths = [cfg.channels, *cfg.d_widths]
        layers = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(cin, cout, 5, stride=2, padding=2, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(widths[-1], 1, 5, stride=2, padding=2))
        net = nn.Sequential(*layers)
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.02)
        return net

    def forward(self, x) -> list:
        """Logits per scale: the loss uses BCE-with-logits, never log(0)."""
        out = [self.net(x)]
        for i, net in enumerate(self.coarse):
            out.append(net(F.avg_pool2d(x, 2 ** (i + 1))))
        return out
