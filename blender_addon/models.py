"""Where the add-on finds models, and what a model can paint. No bpy here.

Three sources, as the panel offers them: texgen's built-in models (texgen/builtin/NAME/model.onnx
inside the bundled texgen wheel), every .onnx file of a folder the user picks, or one file.
Only ONNX files: the add-on carries onnxruntime, not PyTorch, so a training folder
(model.safetensors) has to be exported first (`texgen export MODEL --out NAME.onnx`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from texgen.errors import TexgenError
from texgen.runtime.surface import Surface

EXPORT_HINT = "export one with `texgen export MODEL --out NAME.onnx`"


def builtin_models() -> dict[str, Path]:
    """{name: model.onnx} for every built-in model that ships an ONNX export."""
    import texgen.builtin
    here = Path(texgen.builtin.__file__).parent
    return {p.parent.name: p for p in sorted(here.glob("*/model.onnx"))}


def builtin_description(path: Path) -> str:
    about = path.parent / "about.json"
    try:
        return json.loads(about.read_text())["description"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def folder_models(folder) -> dict[str, Path]:
    """{file name: path} of the .onnx files directly in `folder` (empty if it is not one)."""
    try:
        return {p.name: p for p in sorted(Path(folder).glob("*.onnx")) if p.is_file()}
    except OSError:
        return {}


def resolve(source: str, builtin: str = "", folder: str = "", folder_model: str = "",
            file: str = "") -> Path:
    """The .onnx file the panel's choice names (source BUILTIN, FOLDER or FILE; paths already
    absolute), or TexgenError saying what to pick."""
    if source == "BUILTIN":
        found = builtin_models()
        if not found:
            raise TexgenError("this texgen has no built-in ONNX models "
                              "(texgen/builtin/*/model.onnx)")
        if builtin not in found:
            raise TexgenError(f"no built-in model {builtin!r} (there are: {', '.join(found)})")
        return found[builtin]
    if source == "FOLDER":
        if not folder:
            raise TexgenError("choose a folder of .onnx models")
        if not Path(folder).is_dir():
            raise TexgenError(f"no folder at {folder}")
        found = folder_models(folder)
        if not found:
            hint = (" (it holds a training checkpoint: " + EXPORT_HINT + ")"
                    if (Path(folder) / "model.safetensors").exists() else f": {EXPORT_HINT}")
            raise TexgenError(f"no .onnx models in {folder}{hint}")
        if folder_model not in found:
            raise TexgenError(f"choose one of the models in {folder}")
        return found[folder_model]
    if source == "FILE":
        if not file:
            raise TexgenError("choose a .onnx model file")
        if Path(file).suffix.lower() != ".onnx":
            raise TexgenError(f"{file} is not an ONNX model: {EXPORT_HINT}")
        return Path(file)
    raise TexgenError(f"unknown model source {source!r}")


@dataclass(frozen=True)
class ModelInfo:
    """What the panel shows and offers for one model file."""
    maps: tuple[str, ...]           # the maps the model paints (its ONNX "channels")
    can_make: tuple[str, ...]       # the maps material_maps can give from those
    n_global: int                   # > 0: a seed picks a point of the texture manifold
    exemplars: tuple[str, ...]      # training images or folders (provenance)
    images: int                     # textures it learned (provenance "images", else exemplars)
    exemplar_png: bytes | None
    surface: Surface                # texel size and map defaults (runtime/surface.py)

    @property
    def manifold(self) -> bool:
        """Trained on several textures: a seed picks one, Morph blends two (a model with a
        global code trained on one texture has nothing to morph to)."""
        return self.images > 1 and self.n_global > 0


_INFO: dict[tuple, ModelInfo | str] = {}     # str: why the file cannot be read


def model_info(path) -> ModelInfo:
    """Read a model's metadata (cached per file version, failures too: the panel asks on every
    redraw). TexgenError for a bad file."""
    from texgen.runtime.maps import available_maps
    from texgen.runtime.onnx_painter import OnnxPainter
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise TexgenError(f"no model found at {path}") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _INFO:
        _INFO.clear()                       # one model at a time is shown: keep one
        try:
            # a one-thread CPU session: only the metadata is wanted, read once per file
            p = OnnxPainter(path, device="cpu", threads=1)
            ex = p.provenance.get("exemplars") or []
            images = int(p.provenance.get("images") or len(ex))
            _INFO[key] = ModelInfo(tuple(p.maps), available_maps(p.maps), p.layout.n_global,
                                   tuple(str(e) for e in ex), images, p.exemplar_png(),
                                   p.surface)
        except TexgenError as e:
            _INFO[key] = str(e)
    if isinstance(_INFO[key], str):
        raise TexgenError(_INFO[key])
    return _INFO[key]


def default_threads() -> int:
    """CPU threads for painting: all cores but one, which Blender's UI keeps."""
    return max(1, (os.cpu_count() or 2) - 1)
