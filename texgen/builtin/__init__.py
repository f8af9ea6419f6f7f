"""Models that ship inside the package, so `texgen generate --out demo.png` works with no file."""

from __future__ import annotations

import json
from pathlib import Path

from texgen.errors import TexgenError

HERE = Path(__file__).parent
DEFAULT = "bricks"


def list_builtin() -> list[tuple[str, str]]:
    out = []
    for d in sorted(p for p in HERE.iterdir() if (p / "model.safetensors").exists()):
        about = d / "about.json"
        desc = json.loads(about.read_text())["description"] if about.exists() else ""
        out.append((d.name, desc))
    return out


def builtin_onnx(model: str | None) -> Path | None:
    """The ONNX export a built-in model ships (None: the default one), or None when `model`
    is not a built-in name (a path of the user's wins) or the built-in has no export."""
    name = DEFAULT if model is None else str(model)
    if model is not None and Path(model).exists():
        return None
    onnx = HERE / name / "model.onnx"
    return onnx if "/" not in name and "\\" not in name and onnx.is_file() else None


def builtin_path(model: str | None) -> Path:
    """A user's path, or a built-in model's folder when `model` is a built-in name or None."""
    if model is None:
        model = DEFAULT
    p = Path(model)
    if p.exists():
        return p
    if (HERE / model / "model.safetensors").exists():
        return HERE / model
    names = ", ".join(n for n, _ in list_builtin()) or "none installed"
    raise TexgenError(f"no model at {model!r} (built-in models: {names})")
