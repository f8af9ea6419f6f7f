"""One Generate run: paint -> material maps -> PNG files, on a worker thread. No bpy here.

compute() and save_maps() are plain functions (headless Blender and the tests call them
directly); Job runs them on a thread so Blender's UI keeps drawing: onnxruntime, numpy's big
array operations, zlib and Pillow's encoder release the GIL (the longest wait they cause the
main thread is in benchmarks/out/blender_speed.md), and onnxruntime gets all cores but one
(models.default_threads). The PNG files are written here, off the main thread, because
Blender's own image saving would block the UI (measured: 2.1 s for a 4K PNG, 0.5 s for 2K,
after 0.1 s of pixels.foreach_set); the main thread then only loads them, lazily (material.py).

Painting, tiling, noise and the derived maps all come from texgen.runtime.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.maps import MapParams, map_file_name
from texgen.runtime.tiling import Cancelled

# Tiles of 16 cells (512 px with the usual 32 px cells): the progress bar moves and Cancel
# answers within one tile, and 16 divides every size offered (1K..8K = 32..256 cells), so no
# tile overlaps another. No slower than one shot on the CPU (bricks, one thread: 1K 0.28 s
# tiled vs 0.38 s; 2K 1.04 vs 1.07 s). CUDA gets bigger tiles to keep a GPU busy (not
# measured here: no GPU).
TILE_CELLS = {"cpu": 16, "cuda": 64}
MIN_TILE_CELLS = 4          # out-of-memory retries halve the tile down to this
# 16-bit height: 8 bits terrace a displacement visibly; the other maps are fine in 8 bits
# (and a 16-bit PNG costs Blender 4 floats per pixel once loaded).
BITS = {"color": 8, "normal": 8, "height": 16, "roughness": 8, "ao": 8}
# Where each phase starts on the progress bar: their shares of a 4K run on one CPU thread
# (painting 6.3 s, deriving the maps 6.1 s, writing the PNGs 12.4 s).
PHASES = (("load", 0.0), ("paint", 0.02), ("maps", 0.3), ("write", 0.55), ("done", 1.0))


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
    tile: int | None = None         # cells; None: TILE_CELLS for the device that paints


# --------------------------------------------------------------------------- painting

_painters: dict[tuple, object] = {}
_painters_lock = threading.Lock()


def get_painter(path, device: str = "auto", threads: int | None = None):
    """An OnnxPainter, kept for the next run with the same file and settings: re-generating
    with another seed skips loading the model (and CUDA's start-up)."""
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


def release_cuda_painter() -> None:
    """Drop a cached painter that holds GPU memory: onnxruntime's CUDA arena would otherwise
    keep it from Cycles and EEVEE until Blender quits (the next run pays CUDA's start-up)."""
    with _painters_lock:
        for key in [k for k, p in _painters.items() if p.device == "cuda"]:
            del _painters[key]


def is_out_of_memory(e: BaseException) -> bool:
    """onnxruntime reports allocation failures as RuntimeError-like exceptions with text."""
    if isinstance(e, MemoryError):
        return True
    text = str(e).lower()
    return any(s in text for s in ("out of memory", "failed to allocate", "bad_alloc",
                                   "cudaerrormemoryallocation", "cuda_error_out_of_memory"))


def paint(painter, req: Request, progress=None, cancel=None, notice=None) -> np.ndarray:
    """painter.paint for the request; out of memory -> retry in tiles half the size, down to
    MIN_TILE_CELLS cells, telling notice(text) each time. (C, H, W) in [-1, 1]."""
    tile = req.tile or TILE_CELLS.get(painter.device, 16)
    while True:
        try:
            return painter.paint(req.width, req.height, seed=req.seed, morph_seed=req.morph_seed,
                                 tile=tile, progress=progress, cancel=cancel)
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


def compute(req: Request, progress: Callable[[float, str], None] | None = None,
            cancel: Callable[[], bool] | None = None, notice=None) -> dict[str, np.ndarray]:
    """Paint the request and derive its maps: {name: (H, W, 3) or (H, W) float32 in [0, 1]}
    (runtime/maps.material_maps: color sRGB-encoded, the rest linear data, normals OpenGL).
    progress(fraction, phase) and cancel() as in Job; raises Cancelled or TexgenError."""
    from texgen.runtime.maps import check_wanted, material_maps
    say = progress or (lambda f, phase: None)
    say(_start("load"), "loading model")
    painter = get_painter(req.model, req.device, req.threads)
    if req.device == "cuda" and painter.device != "cuda" and notice:
        notice("CUDA is unavailable (the system console says why): painting on the CPU")
    check_wanted(req.maps, painter.maps)        # before painting: a wrong map fails at once
    a, b = _start("paint"), _start("maps")
    image = paint(painter, req, lambda done, total: say(a + (b - a) * done / total,
                                                        f"painting on {painter.device.upper()}"),
                  cancel, notice)
    if cancel and cancel():
        raise Cancelled()
    say(b, "deriving maps")
    try:
        return material_maps(image, painter.maps, req.maps, req.params)
    except MemoryError:
        raise TexgenError(f"out of memory deriving the maps of a {req.width}x{req.height} "
                          f"texture: choose a smaller size or fewer maps") from None


def save_maps(maps: dict[str, np.ndarray], folder, base: str, progress=None, cancel=None,
              threads: int = 1) -> dict[str, Path]:
    """Write each map as a PNG `folder/base_<suffix>.png` (maps.map_file_name, Poly Haven
    names) and return {name: path}. All maps are written to a scratch folder first and moved
    in together at the end, so a failure or Cancel never leaves a mix of old and new files.
    threads: maps encoded at once (Pillow and zlib release the GIL; PNG encoding is the slowest
    step at 4K: 2.7 s for colour, 6.5 s for a normal map, one core)."""
    from concurrent.futures import ThreadPoolExecutor
    from texgen.runtime.imageio import save_image
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".texgen-", dir=folder))
    except OSError as e:
        raise TexgenError(f"cannot write textures to {folder}: {e.strerror or e}") from None
    a, b = _start("write"), _start("done")
    done = []

    def write(name: str) -> None:
        if cancel and cancel():
            raise Cancelled()
        save_image(scratch / map_file_name(base, name), maps[name], bits=BITS[name])
        done.append(name)
        if progress:
            progress(a + (b - a) * len(done) / len(maps), f"wrote {name}")

    try:
        if progress:
            progress(a, "writing PNGs")
        with ThreadPoolExecutor(max(1, min(threads, len(maps)))) as pool:
            for f in [pool.submit(write, name) for name in maps]:
                f.result()              # the first failure (or Cancelled) propagates
        out = {}
        for name in maps:
            out[name] = folder / map_file_name(base, name)
            os.replace(scratch / out[name].name, out[name])
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _start(phase: str) -> float:
    return dict(PHASES)[phase]


# --------------------------------------------------------------------------- the thread

class Job:
    """compute + save_maps on a daemon thread. The main thread polls the public fields
    (plain attributes: each is one assignment, safe to read from another thread)."""

    def __init__(self, req: Request, folder, base: str):
        self.req, self.folder, self.base = req, Path(folder), base
        self.fraction, self.phase = 0.0, "starting"
        self.notices: list[str] = []        # one-line warnings for the user (OOM retries)
        self.files: dict[str, Path] | None = None   # set when finished
        self.error: str | None = None       # set when failed
        self.cancelled = False              # set when it stopped on cancel()
        self.device = ""
        self.seconds = 0.0
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self.run, name="texgen-generate", daemon=True)

    def start(self) -> "Job":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return self.files is not None or self.error is not None or self.cancelled

    def _progress(self, fraction: float, phase: str) -> None:
        self.fraction, self.phase = fraction, phase

    def run(self) -> None:
        """The whole job; runs on the thread (or directly, headless)."""
        t0 = time.perf_counter()
        stop = self._cancel.is_set
        try:
            maps = compute(self.req, self._progress, stop, self.notices.append)
            files = save_maps(maps, self.folder, self.base, self._progress, stop,
                              self.req.threads or 1)
            del maps
            self.device = get_painter(self.req.model, self.req.device, self.req.threads).device
            self.seconds = time.perf_counter() - t0
            self.fraction, self.phase = 1.0, "done"
            self.files = files
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
            release_cuda_painter()
