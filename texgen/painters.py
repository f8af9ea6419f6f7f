"""What a painter is (the Painter protocol), and opening one for any texgen model by its name.

    painter = open_painter("brick.onnx")        # runtime.onnx_painter.OnnxPainter: no torch
    painter = open_painter("models/brick")      # paint.TorchPainter: PyTorch, imported only here
    painter = open_painter(None)                # the built-in default model (its .onnx)
    img = painter.paint(4096, 4096, seed=7)                         # (channels, h, w) in [-1, 1]
    painter.paint(65536, 65536, seed=7, window=(0, 0, 4096, 4096), sink=...)   # a window, streamed

Both painters are Painters and share one paint() (runtime/canvas.PaintsTextures), so the CLI,
texture sets, evaluation and the Blender add-on take either and paint the same pixels. This
module imports no torch, so `texgen generate --model X.onnx` runs where only the runtime's
packages are installed.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.noise import NoiseLayout
from texgen.runtime.surface import Surface


@runtime_checkable
class Painter(Protocol):
    """A model ready to paint textures (OnnxPainter, TorchPainter).

    kind: texgen/kinds.py ("psgan", "sgan", "texnet", "stylize"); layout: its noise channels;
    scale: output px per noise cell of the model; zoom: the model's px per texture px
    (runtime/canvas.Canvas); margin: noise cells of context a tile needs on each side;
    maps: the map of each output channel group (runtime/maps.py); channels: output channels;
    surface: real-world size and map defaults; device, device_note: where it paints and, when a
    GPU was skipped, why; noise_version: the noise it draws (runtime/noise.py)."""
    kind: str
    layout: NoiseLayout
    scale: int
    zoom: float
    margin: int
    maps: list
    surface: Surface
    device: str
    device_note: str
    noise_version: int

    @property
    def channels(self) -> int: ...

    def run(self, z: np.ndarray, ys: np.ndarray, xs: np.ndarray, torus: np.ndarray) -> np.ndarray:
        """Paint one tile's interior: z (B, C, h + 2 margin, w + 2 margin) at canvas cells ys,
        xs of a torus [H, W] cells -> (B, channels, h * scale, w * scale) float32 in [-1, 1]."""

    def paint(self, width: int, height: int, seed: int = 0, *, morph_seed: int | None = None,
              tileable: bool = True, window=None, sink=None, tile: int | None = None,
              progress: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> np.ndarray | None:
        """Window (x, y, w, h px; default all) of the width x height texture of `seed`:
        (channels, h, w) float32 in [-1, 1], or None when `sink` took the rows
        (runtime.canvas.paint_texture)."""

    def exemplar_png(self) -> bytes | None:
        """The training exemplar's thumbnail (PNG bytes), or None."""


def open_painter(model: str | None, device: str = "auto", threads: int | None = None) -> Painter:
    """An OnnxPainter for a .onnx file or a built-in name (None: the built-in default; the
    built-ins ship their ONNX export), else a TorchPainter for a model folder or a .safetensors
    file. device and threads apply to ONNX models (PyTorch models paint on the CPU)."""
    from texgen.builtin import builtin_onnx
    onnx = builtin_onnx(model)
    if onnx is None and model is not None and str(model).lower().endswith(".onnx"):
        onnx = model
    if onnx is not None:
        from texgen.runtime.onnx_painter import OnnxPainter
        return OnnxPainter(onnx, device=device, threads=threads)
    from texgen.builtin import builtin_path
    path = builtin_path(model)
    try:
        from texgen.paint import TorchPainter
    except ImportError as e:
        raise TexgenError(f"painting {path} (a training checkpoint) needs PyTorch ({e}): "
                          f"pip install 'texgen[train]', or paint its export "
                          f"(texgen export {model} --out NAME.onnx)") from None
    return TorchPainter(path)


def shared_painter(model: str | None, device: str = "auto", threads: int | None = None) -> Painter:
    """open_painter, once per process for the same model file and settings: a process that
    runs many jobs of one model (this one, a pool worker, a Ray worker) loads it once. A model
    file replaced since (another size or time) is opened again."""
    try:
        st = os.stat(model) if model is not None else None
        stamp = (st.st_size, st.st_mtime_ns) if st else None
    except OSError:                     # a built-in name, or a folder open_painter will judge
        stamp = None
    return _shared(model, device, threads, stamp)


@functools.lru_cache(maxsize=4)
def _shared(model, device, threads, stamp) -> Painter:
    return open_painter(model, device=device, threads=threads)


def model_surface(model: str | None) -> Surface:
    """The model's texel size and map defaults (runtime/surface.py), read from its metadata
    without painting."""
    from texgen.builtin import builtin_onnx
    onnx = builtin_onnx(model) or (model if str(model).lower().endswith(".onnx") else None)
    if onnx is not None:
        from texgen.runtime.onnx_painter import OnnxPainter
        return OnnxPainter(onnx, device="cpu", threads=1).surface
    from texgen import checkpoint
    from texgen.builtin import builtin_path
    return Surface.from_dict(checkpoint.load_model(builtin_path(model))[1].get("surface"))
