"""One Generate run: paint -> material maps -> PNG files, on a worker thread. No bpy here.

run_job() is a plain function (headless Blender and the tests call it directly); Job runs it
on a thread so Blender's UI keeps drawing: onnxruntime, numpy's big array operations (the FFTs
included), zlib and Pillow's encoder release the GIL (the longest wait they cause the main
thread is in benchmarks/out/blender_speed.md), and onnxruntime gets all cores but one
(models.default_threads). The PNG files are written here, off the main thread, because
Blender's own image saving would block the UI (measured: 2.1 s for a 4K PNG, 0.5 s for 2K,
after 0.1 s of pixels.foreach_set); the main thread then only loads them, lazily (material.py).
Each map is encoded on a second thread as soon as it is derived, while the next is derived.

Files are named for what they hold: model, seed, size and a hash of everything else that
decides their pixels (file_base), so two materials, two sessions or two .blend files never
write over each other's textures, and a saved .blend always finds its own pixels.

Painting, tiling, noise and the derived maps all come from texgen.runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.maps import MapParams, map_file_name
from texgen.runtime.tiling import Cancelled
from texgen.runtime.udim import tile_path

# Tiles of 16 cells (512 px with the usual 32 px cells): the progress bar moves and Cancel
# answers within one tile, and 16 divides every size offered (1K..8K = 32..256 cells), so no
# tile overlaps another. No slower than one shot on the CPU (bricks, one thread: 1K 0.28 s
# tiled vs 0.38 s; 2K 1.04 vs 1.07 s). GPUs get bigger tiles to keep them busy (not measured
# here: no GPU).
CPU_TILE_CELLS, GPU_TILE_CELLS = 16, 64
MIN_TILE_CELLS = 4          # out-of-memory retries halve the tile down to this
# 16-bit height: 8 bits terrace a displacement visibly; the other maps are fine in 8 bits
# (and a 16-bit PNG costs Blender 4 floats per pixel once loaded).
BITS = {"color": 8, "normal": 8, "height": 16, "roughness": 8, "ao": 8}
# zlib level of the PNGs: 1 encodes 2-4x faster than the default 6 for files 5-20 % bigger
# (2K, one core: colour 0.48 s vs 0.61 s, normal 0.29 s vs 1.26 s, roughness 0.10 s vs 0.41 s)
PNG_LEVEL = 1
# Where each phase starts on the progress bar; the maps then advance it file by file.
PHASES = (("load", 0.0), ("paint", 0.02), ("maps", 0.4), ("done", 1.0))


@dataclass(frozen=True)
class Request:
    """Everything a run needs, read from the panel on the main thread before it starts."""
    model: Path
    width: int
    height: int
    seed: int = 0
    morph_seed: int | None = None
    maps: tuple[str, ...] = ("color", "normal", "roughness", "height")
    params: MapParams = field(default_factory=MapParams)
    device: str = "auto"
    threads: int | None = None
    tile: int | None = None         # cells; None: CPU_TILE_CELLS or GPU_TILE_CELLS
    udim: tuple[int, int] | None = None     # (columns, rows): the width x height texture as a
                                            # UDIM set of tiles (runtime/udim.py)

    @property
    def tile_px(self) -> int:
        """px of the image that one repeat of the material shows: a UDIM tile, or the texture."""
        return self.width // self.udim[0] if self.udim else self.width


def file_base(req: Request, model_digest: str) -> str:
    """The texture files' common name: model_s<seed>_<size>_<hash>, e.g. bricks_s3_2048_1a2b3c4d.
    The hash covers everything else that decides the pixels (the model file's own SHA-256, the
    morph, the map settings, the bit depths, texgen's version), so equal names mean equal
    pixels and files never overwrite different ones."""
    from texgen import __version__
    stem = req.model.stem if req.model.stem != "model" else req.model.parent.name
    stem = re.sub(r"[^\w.-]+", "_", stem)[:40] or "texgen"
    key = {"model": model_digest, "seed": req.seed, "morph": req.morph_seed,
           "size": [req.width, req.height], "params": req.params.to_dict(), "bits": BITS,
           "png_level": PNG_LEVEL, "texgen": __version__, "udim": req.udim}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    size = str(req.width) if req.width == req.height else f"{req.width}x{req.height}"
    if req.udim:                    # bricks_s3_udim2x2_1024_...: 2 x 2 tiles of 1024 px
        size = f"udim{req.udim[0]}x{req.udim[1]}_{req.tile_px}"
    return f"{stem}_s{req.seed}_{size}_{digest}"


# --------------------------------------------------------------------------- painting

_painters: dict[tuple, object] = {}
_painters_lock = threading.Lock()


def get_painter(path, device: str = "auto", threads: int | None = None):
    """An OnnxPainter, kept for the next run with the same file and settings: re-generating
    with another seed skips loading the model (and the GPU's start-up and test run)."""
    from texgen.runtime.onnx_painter import OnnxPainter
    path = Path(path)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size, device, threads)
    except OSError:
        key = None                  # OnnxPainter says what is wrong with the path
    with _painters_lock:
        if key is None or key not in _painters:
            painter = OnnxPainter(path, device=device, threads=threads)
            _painters.clear()       # one model in memory at a time
            if key is not None:
                _painters[key] = painter
            return painter
        return _painters[key]


def release_gpu_painter() -> None:
    """Drop a cached painter that holds GPU memory: onnxruntime's CUDA or DirectML arena would
    otherwise keep it from Cycles and EEVEE until Blender quits (the next run pays the GPU's
    start-up)."""
    with _painters_lock:
        for key in [k for k, p in _painters.items() if p.device != "cpu"]:
            del _painters[key]


def is_out_of_memory(e: BaseException) -> bool:
    """onnxruntime reports allocation failures as RuntimeError-like exceptions with text."""
    if isinstance(e, MemoryError):
        return True
    text = str(e).lower()
    return any(s in text for s in ("out of memory", "failed to allocate", "bad_alloc",
                                   "cudaerrormemoryallocation", "cuda_error_out_of_memory",
                                   "e_outofmemory"))


def paint_retrying(painter, req: Request, progress=None, cancel=None, notice=None,
                   window=None) -> np.ndarray:
    """painter.paint for the request (window: x, y, w, h px of it, e.g. a UDIM tile); out of
    memory -> retry in tiles half the size, down to MIN_TILE_CELLS cells, telling
    notice(text) each time. (C, H, W) in [-1, 1]."""
    tile = req.tile or (CPU_TILE_CELLS if painter.device == "cpu" else GPU_TILE_CELLS)
    while True:
        try:
            return painter.paint(req.width, req.height, seed=req.seed, morph_seed=req.morph_seed,
                                 tile=tile, progress=progress, cancel=cancel, window=window)
        except (Cancelled, TexgenError):
            raise
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            if tile <= MIN_TILE_CELLS:
                raise TexgenError(f"out of memory painting {req.width}x{req.height} even in tiles "
                                  f"of {tile * painter.scale} px: choose a smaller size") from None
            tile = max(MIN_TILE_CELLS, tile // 2)
            if notice:
                notice(f"out of memory: retrying in tiles of {tile * painter.scale} px")


@dataclass
class Result:
    files: dict[str, Path]          # {map: PNG path} (UDIM: the path of tile 1001)
    device: str                     # where it painted ("cpu", "cuda", ...)
    device_note: str                # one line on a GPU that was skipped, or ""
    surface: object                 # the model's runtime.surface.Surface (texel size)


def run_job(req: Request, folder, progress: Callable[[float, str], None] | None = None,
            cancel: Callable[[], bool] | None = None, notice=None,
            encoders: int = 1) -> Result:
    """Paint the request, derive its maps and write them as PNGs `folder/<file_base>_<suffix>
    .png` (Poly Haven suffixes; a UDIM set: `..._<suffix>.1001.png` and on, one per tile).
    Each map is handed to one of `encoders` threads as soon as it is derived (zlib releases
    the GIL, so encoding runs beside the next map's derivation). All files go to a scratch
    folder first and are moved in together at the end, so a failure or Cancel never leaves a
    mix of old and new files. progress(fraction, phase); raises Cancelled or TexgenError."""
    from texgen.runtime.maps import check_wanted
    say = progress or (lambda f, phase: None)
    stop = cancel or (lambda: False)
    say(_start("load"), "loading model")
    painter = get_painter(req.model, req.device, req.threads)
    check_wanted(req.maps, painter.maps)        # before painting: a wrong map fails at once
    if req.udim and not set(req.maps) <= set(painter.maps):
        raise TexgenError("a UDIM set paints the maps the model learned: the others are "
                          "derived from the whole texture")
    base = file_base(req, painter.metadata.get("texgen_sha256", ""))
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".texgen-", dir=folder))
    except OSError as e:
        raise TexgenError(f"cannot write textures to {folder}: {e.strerror or e}") from None
    try:
        write = _write_udim if req.udim else _write_texture
        names = write(painter, req, base, scratch, say, stop, notice, encoders)
        for name in names:
            os.replace(scratch / name, folder / name)
    except MemoryError:
        raise TexgenError(f"out of memory deriving the maps of a {req.width}x{req.height} "
                          f"texture: choose a smaller size or fewer maps") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    first = (lambda p: tile_path(p, 1001)) if req.udim else (lambda p: p)
    files = {name: first(folder / map_file_name(base, name)) for name in req.maps}
    return Result(files, painter.device, painter.device_note, painter.surface)


def _write_texture(painter, req: Request, base: str, scratch: Path, say, stop, notice,
                   encoders: int) -> list[str]:
    """Paint the whole texture, derive each map and write it into scratch; the file names."""
    from texgen.runtime.imageio import save_image
    from texgen.runtime.maps import iter_material_maps
    a, b = _start("paint"), _start("maps")
    label = device_label(painter.device)
    image = paint_retrying(painter, req, lambda done, total: say(a + (b - a) * done / total,
                                                                f"painting on {label}"),
                           stop, notice)
    if stop():
        raise Cancelled()
    done: list[str] = []
    step = (_start("done") - b) / (2 * len(req.maps))      # half per map made, half per file

    def write(name: str, pixels: np.ndarray) -> None:
        if stop():
            raise Cancelled()
        save_image(scratch / map_file_name(base, name), pixels, bits=BITS[name],
                   png_level=PNG_LEVEL)
        done.append(name)
        say(b + step * (len(req.maps) + len(done)), f"wrote {name}")

    say(b, "deriving maps")
    with ThreadPoolExecutor(max(1, encoders)) as pool:
        pending = []
        try:
            for i, (name, pixels) in enumerate(
                    iter_material_maps(image, painter.maps, req.maps, req.params), 1):
                pending.append(pool.submit(write, name, pixels))
                say(b + step * (i + len(done)), f"derived {name}")
                if stop():
                    raise Cancelled()
            del image
        except BaseException:
            for f in pending:       # not started yet: never started
                f.cancel()
            raise
        for f in pending:
            f.result()              # the first failure (or Cancelled) propagates
    return [map_file_name(base, name) for name in req.maps]


def _write_udim(painter, req: Request, base: str, scratch: Path, say, stop, notice,
                encoders: int) -> list[str]:
    """Paint the UDIM set tile by tile (windows of one texture: runtime/udim.py) and write each
    map of each tile into scratch; the file names. Only learned maps: they are made pixel by
    pixel, so a tile's maps are the crop of the whole texture's."""
    from texgen.runtime.imageio import save_image
    from texgen.runtime.maps import material_maps
    from texgen.runtime.udim import udim_tiles
    cols, rows = req.udim
    tiles = udim_tiles(cols, rows, req.tile_px)
    a, z = _start("paint"), _start("done")
    label = device_label(painter.device)
    names = []
    for i, t in enumerate(tiles):
        at = lambda f, i=i: a + (z - a) * (i + f) / len(tiles)
        image = paint_retrying(painter, req, lambda done, total: say(
            at(0.8 * done / total), f"painting tile {t.number} on {label}"), stop, notice,
            window=t.window)
        for name, pixels in material_maps(image, painter.maps, req.maps, req.params).items():
            if stop():
                raise Cancelled()
            path = tile_path(scratch / map_file_name(base, name), t.number)
            save_image(path, pixels, bits=BITS[name], png_level=PNG_LEVEL)
            names.append(path.name)
        say(at(1.0), f"wrote tile {t.number}")
    return names


PREVIEW_WINDOW, PREVIEW_SIDE = 256, 128     # px painted per seed, px shown


def paint_previews(req: Request, seeds) -> dict[int, np.ndarray]:
    """{seed: (PREVIEW_SIDE, PREVIEW_SIDE, 3) sRGB colour in [0, 1]} for the seed browser: the
    top-left PREVIEW_WINDOW px of each seed's texture at the request's size (painter.paint's
    window: the same torus, noise and model as Generate, so these are the very pixels Generate
    paints there), shrunk 2x by area averaging."""
    from texgen.runtime.maps import map_slices
    painter = get_painter(req.model, req.device, req.threads)
    side = min(PREVIEW_WINDOW, req.width, req.height)
    k = max(1, side // PREVIEW_SIDE)
    colour = map_slices(painter.maps).get("color", slice(0, 1))
    out = {}
    for seed in seeds:
        img = painter.paint(req.width, req.height, seed=seed, morph_seed=req.morph_seed,
                            window=(0, 0, side, side))[colour]   # x, y, w, h
        rgb = np.clip(img.transpose(1, 2, 0) * np.float32(0.5) + np.float32(0.5), 0, 1)
        rgb = rgb.reshape(side // k, k, side // k, k, -1).mean(axis=(1, 3))
        out[seed] = np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb
    return out


def device_label(device: str) -> str:
    from texgen.runtime.devices import LABELS
    return LABELS.get(device, device)


def _start(phase: str) -> float:
    return dict(PHASES)[phase]


# --------------------------------------------------------------------------- the thread

class Job:
    """run_job on a daemon thread. The main thread polls the public fields (plain attributes:
    each is one assignment, safe to read from another thread)."""

    def __init__(self, req: Request, folder):
        self.req, self.folder = req, Path(folder)
        self.fraction, self.phase = 0.0, "starting"
        self.notices: list[str] = []        # one-line warnings for the user (OOM retries)
        self.result: Result | None = None   # set when finished
        self.error: str | None = None       # set when failed
        self.cancelled = False              # set when it stopped on cancel()
        self.seconds = 0.0
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self.run, name="texgen-generate", daemon=True)

    @property
    def files(self) -> dict[str, Path] | None:
        return self.result.files if self.result else None

    def start(self) -> "Job":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None or self.cancelled

    def _progress(self, fraction: float, phase: str) -> None:
        self.fraction, self.phase = fraction, phase

    def run(self) -> None:
        """The whole job; runs on the thread (or directly, headless)."""
        t0 = time.perf_counter()
        try:
            result = run_job(self.req, self.folder, self._progress, self._cancel.is_set,
                             self.notices.append, encoders=encoder_threads())
            self.seconds = time.perf_counter() - t0
            self.fraction, self.phase = 1.0, "done"
            self.result = result
        except Cancelled:
            self.cancelled = True
        except TexgenError as e:
            self.error = str(e)
        except MemoryError:
            self.error = (f"out of memory at {self.req.width}x{self.req.height}: "
                          f"choose a smaller size")
        except Exception as e:      # a bug: say so in one line, full story on the console
            traceback.print_exc()
            self.error = f"unexpected error ({type(e).__name__}: {e}); see the system console"
        finally:
            release_gpu_painter()


def encoder_threads() -> int:
    """PNG encoders beside the thread deriving the maps: all cores but one (Blender's)."""
    return max(1, (os.cpu_count() or 2) - 1)
