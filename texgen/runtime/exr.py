"""A small OpenEXR codec: 32-bit float scanline images, uncompressed or ZIP (numpy + zlib).

Enough for texture sets: linear data maps (height, roughness, normals) keep their full
precision, and every DCC tool reads the result. Not a general reader: only scanline files
(no tiles, no multi-part, no deep data) with NONE, ZIPS or ZIP compression and HALF, FLOAT or
UINT channels, which covers what write_exr makes and round-trips it in the tests.

File layout (OpenEXR 2 spec, little-endian): magic, version, header attributes
(name\\0 type\\0 size value ..., then \\0), an offset table with one uint64 per chunk, and the
chunks: (int32 first line, int32 byte count, pixel data). A chunk holds `lines` scanlines; a
scanline holds each channel's row in turn, channels in alphabetical order (B, G, R).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from texgen.errors import TexgenError
from texgen.files import atomic_path
from texgen.runtime.imageio import MAX_PIXELS, check_file_bytes, max_file_bytes

__all__ = ["write_exr", "read_exr"]

_MAGIC = 20000630
_VERSION = 2
_TILED = 0x200
_LONG_NAMES = 0x400             # attribute names up to 255 bytes: nothing else changes
_NONE, _ZIPS, _ZIP = 0, 2, 3
_LINES = {_NONE: 1, _ZIPS: 1, _ZIP: 16}          # scanlines per chunk
_COMPRESSION = {"none": _NONE, "zip": _ZIP}
_PIXEL_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}   # UINT HALF FLOAT
_FLOAT = 2
# Channel names by count, in the order callers see them (files store them sorted).
_NAMES = {1: ("Y",), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}
_MAX_CHANNELS = 4               # a texture map: Y, RGB or RGBA (bounds the planes allocated)


# --------------------------------------------------------------------------- writing

def write_exr(path, array, compression: str = "zip", level: int = 4) -> None:
    """Write (H, W) or (H, W, 1/3/4) pixels as a 32-bit float EXR, atomically.

    One channel is written as Y (luminance), three as R, G, B, four as R, G, B, A; values are
    stored as they are (EXR is linear by convention: convert sRGB colour before calling).
    """
    if compression not in _COMPRESSION:
        raise TexgenError(f"EXR compression must be one of {', '.join(_COMPRESSION)}")
    arr = np.asarray(array, np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in _NAMES or 0 in arr.shape:
        raise TexgenError(f"cannot save {path}: expected H x W x 1/3/4 pixels, got {arr.shape}")
    comp = _COMPRESSION[compression]
    h, w, c = arr.shape
    names = _NAMES[c]
    order = sorted(range(c), key=lambda i: names[i])
    header = _header([names[i] for i in order], w, h, comp)
    lines = _LINES[comp]
    chunks = [_chunk(arr[y:y + lines, :, order], y, comp, level) for y in range(0, h, lines)]
    offsets = np.cumsum([len(header) + 8 * len(chunks)] + [len(ch) for ch in chunks[:-1]])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        f.write(offsets.astype("<u8").tobytes())
        for ch in chunks:
            f.write(ch)


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _header(names: list[str], w: int, h: int, comp: int) -> bytes:
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", _FLOAT, 0, 1, 1)
                      for n in names) + b"\0"
    window = struct.pack("<iiii", 0, 0, w - 1, h - 1)
    return b"".join([
        struct.pack("<ii", _MAGIC, _VERSION),
        _attribute("channels", "chlist", chlist),
        _attribute("compression", "compression", bytes([comp])),
        _attribute("dataWindow", "box2i", window),
        _attribute("displayWindow", "box2i", window),
        _attribute("lineOrder", "lineOrder", b"\0"),                  # increasing y
        _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
        b"\0",
    ])


def _chunk(rows: np.ndarray, y: int, comp: int, level: int) -> bytes:
    """Scanlines (n, W, C) starting at line y -> one chunk (each line: channel by channel)."""
    raw = np.ascontiguousarray(rows.transpose(0, 2, 1), "<f4").tobytes()
    data = _zip_encode(raw, level) if comp != _NONE else raw
    if len(data) >= len(raw):       # incompressible: the spec stores such a chunk raw
        data = raw
    return struct.pack("<ii", y, len(data)) + data


def _zip_encode(raw: bytes, level: int) -> bytes:
    """OpenEXR's ZIP: bytes split into even / odd halves, then deltas (+128), then zlib."""
    b = np.frombuffer(raw, np.uint8)
    t = np.concatenate([b[0::2], b[1::2]])
    d = t.copy()
    d[1:] = t[1:] - t[:-1] + np.uint8(128)          # uint8 arithmetic wraps mod 256
    return zlib.compress(d.tobytes(), level)


def _zip_decode(data: bytes, size: int) -> bytes:
    # inflate at most one byte more than the chunk needs: a "zip bomb" stops there
    d = np.frombuffer(zlib.decompressobj().decompress(data, size + 1), np.uint8).copy()
    if d.size != size:
        raise ValueError("a ZIP chunk has the wrong size")
    d[1:] -= np.uint8(128)
    t = np.cumsum(d, dtype=np.uint8)                  # undo the deltas, mod 256
    out = np.empty_like(t)
    half = (size + 1) // 2
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


# --------------------------------------------------------------------------- reading

def read_exr(path, max_pixels: float = MAX_PIXELS) -> np.ndarray:
    """Read a scanline EXR -> float32 (H, W, C), channels R, G, B, A or Y (else file order).
    Raises TexgenError for anything it cannot read, and, before allocating, for a file or
    image bigger than imageio's limits (at most 4 channels of max_pixels)."""
    path = Path(path)
    try:
        check_file_bytes(path, max_file_bytes(max_pixels) * 2)     # float32: twice 16-bit
        data = path.read_bytes()
        return _decode(data, max_pixels)
    except OSError as e:
        raise TexgenError(f"cannot read {path}: {e.strerror or e}") from None
    except TexgenError as e:
        raise TexgenError(f"{path}: {e}") from None
    except (ValueError, struct.error, zlib.error, KeyError, IndexError) as e:
        raise TexgenError(f"{path} is not a readable EXR file ({type(e).__name__}: {e})") from None


def _decode(data: bytes, max_pixels: float = MAX_PIXELS) -> np.ndarray:
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != _MAGIC:
        raise ValueError("no OpenEXR magic number")
    if version & 0xFF != _VERSION or version & ~0xFF & ~(_TILED | _LONG_NAMES):
        raise TexgenError("only single-part scanline EXR files are supported")
    if version & _TILED:
        raise TexgenError("tiled EXR files are not supported")
    attrs, pos = _read_header(data, 8)
    channels = _read_chlist(attrs["channels"])
    comp = attrs["compression"][0]
    if comp not in _LINES:
        raise TexgenError(f"EXR compression {comp} is not supported (NONE, ZIPS, ZIP only)")
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"])
    w, h = x1 - x0 + 1, y1 - y0 + 1
    if w < 1 or h < 1 or w * h > max_pixels:
        raise TexgenError(f"the image is {w}x{h}: more than the {max_pixels / 1e6:.3g} Mpx "
                          f"limit, or empty")
    if not 1 <= len(channels) <= _MAX_CHANNELS:
        raise TexgenError(f"{len(channels)} channels: a texture map has 1 to {_MAX_CHANNELS}")
    lines = _LINES[comp]
    n_chunks = -(-h // lines)
    offsets = np.frombuffer(data, "<u8", n_chunks, pos)
    planes = [np.empty((h, w), dt) for _, dt in channels]
    line_bytes = w * sum(dt.itemsize for _, dt in channels)
    for off in offsets.tolist():
        y, size = struct.unpack_from("<ii", data, off)
        y -= y0
        n = min(lines, h - y)
        if not 0 <= y < h:
            raise ValueError(f"chunk at line {y + y0} is outside the image")
        raw = data[off + 8:off + 8 + size]
        if len(raw) != size:
            raise ValueError("truncated chunk")
        if size < n * line_bytes:
            raw = _zip_decode(raw, n * line_bytes)
        _scatter(raw, planes, y, n, w)
    return _ordered([name for name, _ in channels], planes)


def _read_header(data: bytes, pos: int) -> tuple[dict[str, bytes], int]:
    attrs = {}
    while data[pos] != 0:
        name_end = data.index(b"\0", pos)
        kind_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, kind_end + 1)
        start = kind_end + 5
        attrs[data[pos:name_end].decode()] = data[start:start + size]
        pos = start + size
    return attrs, pos + 1


def _read_chlist(raw: bytes) -> list[tuple[str, np.dtype]]:
    out, pos = [], 0
    while raw[pos] != 0:
        end = raw.index(b"\0", pos)
        ptype, _, xs, ys = struct.unpack_from("<iB3xii", raw, end + 1)
        if (xs, ys) != (1, 1):
            raise TexgenError("subsampled EXR channels are not supported")
        out.append((raw[pos:end].decode(), _PIXEL_DTYPES[ptype]))
        pos = end + 17
    return out


def _scatter(raw: bytes, planes: list[np.ndarray], y: int, n: int, w: int) -> None:
    """Copy n scanlines of a chunk (each: every channel's row in turn) into the planes."""
    buf = np.frombuffer(raw, np.uint8).reshape(n, -1)
    col = 0
    for plane in planes:
        width = w * plane.dtype.itemsize
        plane[y:y + n] = buf[:, col:col + width].copy().view(plane.dtype).reshape(n, w)
        col += width


def _ordered(names: list[str], planes: list[np.ndarray]) -> np.ndarray:
    """Planes in file (alphabetical) order -> (H, W, C) float32 in R, G, B, A / Y order."""
    rank = {"R": 0, "G": 1, "B": 2, "A": 3, "Y": 0}
    order = sorted(range(len(names)), key=lambda i: (rank.get(names[i], 9), names[i]))
    return np.stack([planes[i].astype(np.float32) for i in order], axis=2)
