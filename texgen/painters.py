"""Open any texgen model for painting, by what the user names.

    painter = open_painter("brick.onnx")        # runtime.onnx_painter.OnnxPainter: no torch
    painter = open_painter("models/brick")      # paint.TorchPainter: PyTorch, imported only here
    painter = open_painter(None)                # the built-in default model (its .onnx)

Both painters have the same interface (layout, scale, margin, maps, channels, method, run,
paint), so the CLI's commands and the evaluation take either. This module imports no torch,
so `texgen generate --model X.onnx` runs where only the runtime's packages are installed.
"""

from __future__ import annotations

from texgen.errors import TexgenError
from texgen.runtime.surface import Surface


def open_painter(model: str | None, device: str = "auto", threads: int | None = None):
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
