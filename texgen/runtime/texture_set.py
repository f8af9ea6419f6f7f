"""Texture-set export: paint many seeds of one ONNX model into a library of material sets.

    export_library("conc.onnx", range(1, 51), "library/",
                   SetSpec(width=4096, height=4096, maps=("color", "normal", "roughness"),
                           format="png16", naming="polyhaven"), jobs=2)

writes, per seed, a folder library/conc_0007/ holding conc_0007_diff.png, conc_0007_nor_gl.png,
..., a small conc_0007_preview.png (the maps side by side) and manifest.json (model hash, seed,
size, settings, every file with its size and SHA-256), then library/contact_sheet.png.

Safe to stop and rerun: every file is written atomically (temp file, then rename) and the
manifest is written last, so a set counts as finished only once all its files are whole. A
rerun checks each finished set's files against the manifest's checksums, skips the intact
ones and redoes the rest. A set made with other settings is never silently replaced.

Torch-free (numpy, Pillow, onnxruntime): the Blender add-on can use it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from texgen import __version__
from texgen.errors import TexgenError
from texgen.runtime.canvas import check_size
from texgen.runtime.exr import write_exr
from texgen.files import atomic_write_bytes, file_sha256, sweep_temps
from texgen.runtime.imageio import read_image, save_image
from texgen.runtime.maps import (NAMINGS, MapParams, check_wanted, colour_space, map_file_name,
                                 material_maps, srgb_to_linear)

__all__ = ["FORMATS", "MANIFEST", "SetSpec", "parse_seeds", "set_name", "export_set",
           "export_library", "write_map", "write_maps_beside", "contact_sheet",
           "file_sha256"]

# format name -> (file suffix, bits per channel)
FORMATS = {"png8": (".png", 8), "png16": (".png", 16), "exr": (".exr", 32)}
MANIFEST = "manifest.json"
CONTACT_SHEET = "contact_sheet.png"
SET_FORMAT = 1                  # version of the manifest layout
PREVIEW_SIDE = 128              # px of each map's thumbnail in a set's preview


@dataclass(frozen=True)
class SetSpec:
    """What every set of one export shares. prefix: set names are PREFIX_SEED (default: the
    model file's stem). tile: painting tile in noise cells (bounds memory, same pixels; None:
    the painter's default)."""
    width: int = 2048
    height: int = 2048
    maps: tuple = ("color", "normal", "height", "roughness", "ao")
    format: str = "png16"
    naming: str = "polyhaven"
    params: MapParams = field(default_factory=MapParams)
    prefix: str | None = None
    tile: int | None = None

    def check(self, model_maps: list[str]) -> None:
        """TexgenError for a setting that cannot work, before anything is painted."""
        check_size(self.width, self.height)
        check_wanted(self.maps, model_maps)
        if self.format not in FORMATS:
            raise TexgenError(f"unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        if self.naming not in NAMINGS:
            raise TexgenError(f"unknown naming {self.naming!r}: use one of {', '.join(NAMINGS)}")
        if self.prefix is not None and not re.fullmatch(r"[\w-][\w.-]*", self.prefix):
            raise TexgenError(f"set name {self.prefix!r} may only hold letters, digits, '_', "
                              f"'-' and '.', and not start with '.' (hidden files): choose "
                              f"another with --name")

    def settings(self, model_sha256: str, seed: int) -> dict:
        """Everything that decides a set's pixels and files: a rerun compares it."""
        return {"model_sha256": model_sha256, "seed": seed, "width": self.width,
                "height": self.height, "maps": list(self.maps), "format": self.format,
                "naming": self.naming, "params": self.params.to_dict()}


def parse_seeds(text: str) -> list[int]:
    """'1-50', '7', '1-3,10,20-22' -> the seeds in order, without repeats."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise TexgenError(f"seeds {text!r}: expected numbers and ranges like 1-50,60")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a or b >= 2 ** 63:
            raise TexgenError(f"seeds {text!r}: range {part} is empty or too large")
        if b - a >= 1_000_000:
            raise TexgenError(f"seeds {text!r}: range {part} has more than a million seeds")
        seeds += range(a, b + 1)
    return list(dict.fromkeys(seeds))


def set_name(prefix: str, seed: int) -> str:
    return f"{prefix}_{seed:04d}"


# --------------------------------------------------------------------------- one set

def write_map(path: Path, pixels: np.ndarray, name: str, fmt: str) -> None:
    """Write one map (H, W[, 3]) in [0, 1] atomically as `fmt` (see FORMATS). EXR holds linear
    values, so colour is decoded from sRGB there; data maps are written as they are."""
    suffix, bits = FORMATS[fmt]
    if bits == 32:
        write_exr(path, srgb_to_linear(pixels) if name == "color" else pixels)
    else:
        save_image(path, pixels, bits=bits)


def _file_entry(path: Path, **extra) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path), **extra}


def _thumb(pixels: np.ndarray, side: int = PREVIEW_SIDE) -> np.ndarray:
    """A map (H, W[, 3]) in [0, 1] -> uint8 (side, side * W / H, 3) by area averaging."""
    from PIL import Image
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    im = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    w = max(1, round(side * pixels.shape[1] / pixels.shape[0]))
    return np.asarray(im.resize((w, side), Image.BOX))


def export_set(painter, spec: SetSpec, seed: int, out, model_sha256: str,
               on_map: Callable[[str], None] | None = None,
               cancel: Callable[[], bool] | None = None, threads: int = 1) -> dict:
    """Paint seed `seed` with `painter` (an OnnxPainter) and write its set under `out`:
    every map, the preview, then the manifest (last: it marks the set finished). Returns the
    manifest. on_map(name) is called after each map file is written. threads: maps encoded
    at once (zlib and numpy release the GIL, so threads share the cores)."""
    prefix = spec.prefix or painter.path.stem
    name = set_name(prefix, seed)
    folder = Path(out) / name
    made = not folder.exists()          # made by the first file written (atomic_path), so a
    sweep_temps(folder, exclusive=True)  # set killed while painting leaves no empty folder
    try:
        return _paint_set(painter, spec, seed, folder, name, model_sha256, on_map, cancel,
                          threads)
    except BaseException:
        with contextlib.suppress(OSError):
            if made and not any(folder.iterdir()):  # a set that failed before its first file
                folder.rmdir()
        raise


def _paint_set(painter, spec: SetSpec, seed: int, folder: Path, name: str, model_sha256: str,
               on_map, cancel, threads: int) -> dict:
    tile = {"tile": spec.tile} if spec.tile else {}
    image = painter.paint(spec.width, spec.height, seed=seed, cancel=cancel, **tile)
    maps = material_maps(image, painter.maps, spec.maps, spec.params)
    del image
    suffix, bits = FORMATS[spec.format]

    def write(m: str) -> Path:
        path = folder / map_file_name(name, m, spec.naming, spec.params.normal_convention, suffix)
        write_map(path, maps[m], m, spec.format)
        return path

    files, thumbs = {}, []
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for m, path in zip(spec.maps, pool.map(write, spec.maps)):     # in order, as each ends
            files[m] = _file_entry(path, bits=bits, colour_space=colour_space(m, bits == 32))
            thumbs.append(_thumb(maps.pop(m)))
            if on_map:
                on_map(m)
    preview = folder / f"{name}_preview.png"
    save_image(preview, np.concatenate(thumbs, axis=1))
    manifest = {"texgen_set": SET_FORMAT, "texgen_version": __version__, "name": name,
                "model": painter.path.name, "model_maps": list(painter.maps),
                "settings": spec.settings(model_sha256, seed), "files": files,
                "preview": _file_entry(preview)}
    atomic_write_bytes(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def write_maps_beside(color_path, image: np.ndarray, channels: list[str], wanted, params:
                      MapParams, naming: str = "polyhaven", bits: int = 8,
                      size: tuple[int, int] | None = None,
                      written: list | None = None) -> list[Path]:
    """`texgen generate --maps`: the wanted maps of a painted image (C, H, W) in [-1, 1] as PNGs
    next to its colour file, named like a set: wall.png -> wall_nor_gl.png, wall_rough.png
    ("color" is the colour file itself). size (w, h): crop to it after deriving the maps on the
    whole canvas (a --no-tileable canvas is a crop of a bigger torus). written: a list each
    file is appended to as soon as it exists (so a caller can remove them if a later one fails)."""
    color_path = Path(color_path)
    maps = material_maps(image, channels, [m for m in wanted if m != "color"], params)
    paths = []
    for name, pixels in maps.items():
        if size:
            pixels = pixels[:size[1], :size[0]]
        path = color_path.with_name(map_file_name(color_path.stem, name, naming,
                                                  params.normal_convention, ".png"))
        write_map(path, pixels, name, "png16" if bits == 16 else "png8")
        paths.append(path)
        if written is not None:
            written.append(path)
    return paths


# --------------------------------------------------------------------------- resume

def read_manifest(folder: Path) -> dict | None:
    """A set folder's manifest, or None when it has none or it is unreadable."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and m.get("texgen_set") == SET_FORMAT else None


def _intact(folder: Path, entry: dict) -> bool:
    path = folder / entry["file"]
    try:
        return path.stat().st_size == entry["bytes"] and file_sha256(path) == entry["sha256"]
    except OSError:
        return False


def set_is_finished(folder: Path, settings: dict, overwrite: bool = False) -> bool:
    """True when folder holds a set made with `settings` whose files all match their checksums.
    A set made with other settings raises TexgenError (unless overwrite: then it is redone)."""
    m = read_manifest(folder)
    if m is None:
        return False
    old = m.get("settings")
    if not isinstance(old, dict):               # edited or damaged: cannot tell what it holds
        if overwrite:
            return False
        raise TexgenError(f"{folder}/{MANIFEST} is damaged (its settings are not a JSON "
                          f"object): pass --overwrite to redo the set, or export elsewhere")
    if old != settings:
        if overwrite:
            return False
        changed = ", ".join(k for k in settings if old.get(k) != settings[k])
        raise TexgenError(f"{folder} holds a set made with other settings ({changed} differ): "
                          f"export to another folder, or pass --overwrite to replace it")
    try:
        entries = [*m["files"].values(), m["preview"]]
        return all(_intact(folder, e) for e in entries)
    except (KeyError, TypeError, AttributeError):
        return False


# --------------------------------------------------------------------------- a library

def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                          # not on every OS
        return os.cpu_count() or 1


def export_library(model, seeds: Iterable[int], out, spec: SetSpec, jobs: int = 1,
                   device: str = "cpu", overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None, sheet: bool = True,
                   ray: str | None = None) -> dict:
    """Export one set per seed into `out`; returns {"done": [...], "skipped": [...],
    "contact_sheet": path or None, "device": where it painted (None when workers chose),
    "device_note": why a GPU was skipped or ""}. progress(maps written, maps to write).

    jobs > 1 paints sets in that many processes, each with its own OnnxPainter using
    cores / jobs threads; ray: an address (or "auto") paints them as Ray tasks instead, one
    thread each (texgen/cluster.py). Finished sets (manifest present, checksums intact) are
    skipped, and so are those jobs.json records as finished.
    """
    from texgen.cluster import JOBS_FILE, Job, Where, run_jobs
    from texgen.painters import shared_painter

    model, out = Path(model).resolve(), Path(out).resolve()     # workers may be elsewhere
    if model.suffix.lower() != ".onnx":
        raise TexgenError(f"{model}: export-set paints from an ONNX file; make one with "
                          f"`texgen export MODEL --out {model.stem or 'model'}.onnx`")
    if jobs < 1:
        raise TexgenError(f"jobs must be at least 1, not {jobs}")
    if out.exists() and not out.is_dir():
        raise TexgenError(f"{out} is a file, not a folder")
    seeds = list(seeds)
    here = ray is None and jobs == 1        # painted by this process, with every core
    threads = max(1, _cores() // jobs) if ray is None else 1
    painter = shared_painter(str(model), device if here else "cpu", threads if here else 1)
    spec = replace(spec, prefix=model.stem if spec.prefix is None else spec.prefix)
    spec.check(painter.maps)
    sha = painter.metadata["texgen_sha256"]
    todo, skipped = [], []
    for seed in seeds:
        folder = out / set_name(spec.prefix, seed)
        finished = set_is_finished(folder, spec.settings(sha, seed), overwrite)
        (skipped if finished else todo).append(seed)
    work = [Job(set_name(spec.prefix, s), _set_job,
                (str(model), device, threads, spec, s, str(out), sha),
                key=spec.settings(sha, s), units=len(spec.maps),
                cleanup=functools.partial(_forget_set, out / set_name(spec.prefix, s)))
            for s in todo]
    ran, known = run_jobs(work, out / JOBS_FILE, Where(workers=jobs, ray=ray), progress, cancel)
    # where it painted (devices.py), as the front-ends report it; other workers each choose
    painted = {"device": painter.device if here else None,
               "device_note": painter.device_note if here else ""}
    return {"done": ran, "skipped": [set_name(spec.prefix, s) for s in skipped] + known,
            "contact_sheet": contact_sheet(out) if sheet else None, **painted}


def _set_job(model: str, device: str, threads: int, spec: SetSpec, seed: int, out: str,
             sha: str, tick=None, cancel=None) -> list[Path]:
    """One set, wherever it runs (texgen/cluster.py): its files, manifest last."""
    from texgen.painters import shared_painter
    maps = []
    on_map = (lambda m: (maps.append(m), tick(len(maps), len(spec.maps)))) if tick else None
    m = export_set(shared_painter(model, device, threads), spec, seed, out, sha, on_map=on_map,
                   cancel=cancel, threads=threads)
    folder = Path(out) / m["name"]
    return [*(folder / e["file"] for e in m["files"].values()), folder / m["preview"]["file"],
            folder / MANIFEST]


def _forget_set(folder: Path) -> None:
    """After a stop: the temps a stopped worker left, and the set's folder if that is all it
    held."""
    sweep_temps(folder, exclusive=True)
    with contextlib.suppress(OSError):
        folder.rmdir()                  # only if empty: nothing of it was written


# --------------------------------------------------------------------------- contact sheet

def contact_sheet(out, label: bool = True) -> Path | None:
    """library/contact_sheet.png: every finished set's preview in a grid, named; None when the
    library has no set yet."""
    from PIL import Image, ImageDraw
    out = Path(out)
    cells = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []:
        m = read_manifest(folder)
        if m and (folder / m.get("preview", {}).get("file", "")).is_file():
            cells.append((m["name"], read_image(folder / m["preview"]["file"], min_size=1)))
    if not cells:
        return None
    pad = 16 if label else 0
    ch = max(c.shape[0] for _, c in cells) + pad
    cw = max(c.shape[1] for _, c in cells)
    cols = max(1, round(np.sqrt(len(cells) * ch / cw)))
    rows = -(-len(cells) // cols)
    sheet = Image.new("RGB", (cols * cw, rows * ch), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, (name, img) in enumerate(cells):
        x, y = (i % cols) * cw, (i // cols) * ch
        sheet.paste(Image.fromarray((img * 255 + 0.5).astype(np.uint8)), (x, y + pad))
        if label:
            draw.text((x + 3, y + 2), name, fill=(230, 230, 230))
    path = out / CONTACT_SHEET
    save_image(path, np.asarray(sheet))
    return path
