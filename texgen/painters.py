"""Open any texgen model for painting, by what the user names.

    painter = open_painter("brick.onnx")        # runtime.onnx_painter.OnnxPainter: no torch
    painter = open_painter("models/brick")      # paint.TorchPainter: PyTorch, imported only here
    painter = open_painter(None)                # the built-in default model

Both painters have the same interface (layout, scale, margin, maps, channels, method, run,
paint), so the CLI's commands and the evaluation take either. This module imports no torch,
so `texgen generate --model X.onnx` runs where only the runtime's packages are installed.
"""

from __future__ import annotations


def open_painter(model: str | None, device: str = "auto", threads: int | None = None):
    """An OnnxPainter for a .onnx file, else a TorchPainter for a model folder, a
    .safetensors file or a built-in name (None: the built-in default). device and threads
    apply to ONNX models (PyTorch models paint on the CPU)."""
    if model is not None and str(model).lower().endswith(".onnx"):
        from texgen.runtime.onnx_painter import OnnxPainter
        return OnnxPainter(model, device=device, threads=threads)
    from texgen.builtin import builtin_path
    from texgen.paint import TorchPainter
    return TorchPainter(builtin_path(model))
