"""UDIM sets: one texture painted as COLS x ROWS tiles, one file per tile, that join with no seam.

    paint_udim(painter, "wall.png", cols=4, rows=4, tile_size=4096, seed=7)
    # wall.1001.png (bottom-left) ... wall.1044.png: a 16384 x 16384 texture that also wraps

The numbering Blender, Mari and Substance share: tile (col, row) is 1001 + col + 10 * row, col
counting right from u = 0, row counting up from v = 0, so 1001 is the bottom-left tile and a
row holds at most 10 tiles. The texture's image rows count down, so UDIM row r is the window
at y = (ROWS - 1 - r) * tile_size. Each tile is a window of the same texture
(canvas.paint_to_file), painted from (model, seed, size, window) alone, streamed to its file
and written atomically: any machine may paint any tile, and the set equals one big painting.

A tile's PNG records what it holds (a tEXt chunk, TEXT_KEY): a rerun keeps the tiles already
painted with the same settings and paints the rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from texgen import __version__
from texgen.errors import TexgenError
from texgen.runtime.canvas import Window, check_size, paint_to_file
from texgen.runtime.png import read_text
from texgen.runtime.tiling import DEFAULT_TILE

MAX_COLS, MAX_ROWS = 10, 100            # UDIM numbers run 1001..1999, ten to a row
TEXT_KEY = "texgen"


@dataclass(frozen=True)
class UdimTile:
    number: int                 # 1001 + col + 10 * row
    col: int
    row: int                    # counting up from the bottom of the texture
    window: Window              # px of the whole texture


def parse_udim(text: str) -> tuple[int, int]:
    """'COLSxROWS', e.g. '4x4' -> (cols, rows), within UDIM's 10 x 100 tiles."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise TexgenError(f"--udim {text!r} is not COLSxROWS, e.g. 4x4")
    cols, rows = int(m.group(1)), int(m.group(2))
    if not (1 <= cols <= MAX_COLS and 1 <= rows <= MAX_ROWS):
        raise TexgenError(f"--udim {cols}x{rows}: UDIM sets have 1..{MAX_COLS} columns (tiles "
                          f"1001..1010 make a row) and 1..{MAX_ROWS} rows")
    return cols, rows


def udim_tiles(cols: int, rows: int, tile_size: int) -> list[UdimTile]:
    """Every tile of a cols x rows set of tile_size px tiles, in UDIM order."""
    check_size(cols * tile_size, rows * tile_size)
    return [UdimTile(1001 + c + 10 * r, c, r,
                     Window(c * tile_size, (rows - 1 - r) * tile_size, tile_size, tile_size))
            for r in range(rows) for c in range(cols)]


def tile_path(out, number: int) -> Path:
    """wall.png -> wall.1001.png (a name holding the token <UDIM> gets the number there)."""
    out = Path(out)
    if "<UDIM>" in out.name:
        return out.with_name(out.name.replace("<UDIM>", str(number)))
    return out.with_name(f"{out.stem}.{number}{out.suffix}")


def model_digest(painter) -> str:
    """What identifies the painter's weights: an ONNX file's own SHA-256, else the SHA-256 of
    the checkpoint file."""
    meta = getattr(painter, "metadata", None) or {}
    if meta.get("texgen_sha256"):
        return meta["texgen_sha256"]
    from texgen import checkpoint
    from texgen.files import file_sha256
    return file_sha256(checkpoint.model_path(painter.folder))


def tile_settings(painter, cols: int, rows: int, tile_size: int, tile: UdimTile, seed: int,
                  bits: int, morph_seed: int | None, digest: str | None = None) -> dict:
    """Everything that decides a tile's pixels: what its file records and a rerun compares.
    digest: model_digest(painter), when the caller has it."""
    return {"model_sha256": digest or model_digest(painter), "seed": seed, "morph_seed": morph_seed,
            "udim": [cols, rows], "tile_size": tile_size, "tile": tile.number, "bits": bits,
            "noise_version": painter.noise_version, "texgen": __version__}


def paint_udim_tile(painter, out, cols: int, rows: int, tile_size: int, number: int,
                    seed: int = 0, *, bits: int = 8, morph_seed: int | None = None,
                    tile: int | None = DEFAULT_TILE, progress=None, cancel=None,
                    digest: str | None = None) -> Path:
    """Paint UDIM tile `number` of the cols x rows set of tile_size px tiles of `seed` to
    tile_path(out, number) (PNG, streamed, atomic): the task a worker runs for one tile.
    digest: model_digest(painter), when the caller has it (else it is computed)."""
    tiles = {t.number: t for t in udim_tiles(cols, rows, tile_size)}
    if number not in tiles:
        raise TexgenError(f"tile {number} is not in a {cols}x{rows} UDIM set")
    t = tiles[number]
    path = tile_path(out, number)
    settings = tile_settings(painter, cols, rows, tile_size, t, seed, bits, morph_seed, digest)
    return paint_to_file(painter, path, cols * tile_size, rows * tile_size, seed,
                         window=t.window, bits=bits, morph_seed=morph_seed, tile=tile,
                         progress=progress, cancel=cancel,
                         text={TEXT_KEY: json.dumps(settings, sort_keys=True)})


def is_painted(path: Path, settings: dict) -> bool:
    """True when `path` is a whole tile file recording exactly these settings."""
    try:
        text = read_text(path).get(TEXT_KEY)
        return text is not None and json.loads(text) == settings
    except (OSError, ValueError):
        return False


def paint_udim(painter, out, cols: int, rows: int, tile_size: int, seed: int = 0, *,
               bits: int = 8, morph_seed: int | None = None, tile: int | None = DEFAULT_TILE,
               progress: Callable[[float, int], None] | None = None,
               cancel: Callable[[], bool] | None = None, source: tuple | None = None,
               ray: str | None = None) -> tuple[list[Path], list[Path]]:
    """Paint every tile of the set (UDIM order) that is not already painted with these
    settings; returns (painted, kept). progress(done, total) counts UDIM tiles (fractions of
    those being painted). Each tile is a job (texgen/cluster.py, recorded in OUT's name +
    .jobs.json): painted here by `painter`, or with ray (an address, or "auto") as Ray tasks,
    whose workers open source = (model, device, threads) themselves (painters.shared_painter:
    the model as a path every worker can read, or a built-in name)."""
    from texgen.cluster import Job, Where, run_jobs
    if ray is not None and source is None:
        raise TexgenError("painting a UDIM set on Ray needs the model's path (source)")
    out = Path(out).resolve()
    tiles = udim_tiles(cols, rows, tile_size)
    digest = model_digest(painter)
    jobs, kept = [], []
    for t in tiles:
        path = tile_path(out, t.number)
        settings = tile_settings(painter, cols, rows, tile_size, t, seed, bits, morph_seed, digest)
        if is_painted(path, settings):
            kept.append(path)
            continue
        jobs.append(Job(str(t.number), _tile_job, (
            painter if ray is None else source, str(out), cols, rows, tile_size, t.number, seed,
            bits, morph_seed, tile, digest), key=settings))
    book = out.with_name(out.stem.replace("<UDIM>", "udim") + ".jobs.json")
    run_jobs(jobs, book, Where(ray=ray), progress, cancel)
    return [tile_path(out, int(j.id)) for j in jobs], kept


def _tile_job(painter, out: str, cols: int, rows: int, tile_size: int, number: int, seed: int,
              bits: int, morph_seed, tile, digest: str, tick=None, cancel=None) -> list[Path]:
    """One UDIM tile, wherever it runs: painter is a Painter, or (model, device, threads) for
    a worker to open once (texgen/cluster.py)."""
    if isinstance(painter, tuple):
        from texgen.painters import shared_painter
        painter = shared_painter(*painter)
    return [paint_udim_tile(painter, out, cols, rows, tile_size, number, seed, bits=bits,
                            morph_seed=morph_seed, tile=tile, progress=tick, cancel=cancel,
                            digest=digest)]
