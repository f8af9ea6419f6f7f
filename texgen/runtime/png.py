"""PNG streamed row by row, both ways, in memory bounded by a band of rows (numpy + zlib).

    with PngWriter("big.png", 65536, 65536, channels=3, bits=8) as png:
        for y in ...: png.write(y, rows)         # (n, 65536, 3) uint8, top to bottom
    for y, rows in read_png_rows("big.png"):     # (n, w, c) uint8 / uint16, top to bottom
        ...

The writer makes every PNG texgen writes (runtime/imageio.save_image, streamed canvases):
8 or 16 bits, grey, grey + alpha, RGB or RGBA, each row filtered 'Sub' or 'Up' (filter_rows:
cheap to vectorise; textures compress much better than unfiltered), zlib compressed as the
rows come, IDAT chunks of at most IDAT_BYTES, written atomically (a temp file renamed when
whole: texgen/files.py).

The reader decodes any non-interlaced, non-palette 8 or 16-bit PNG whose rows use the filters
None, Sub or Up (all that texgen writes), vectorised per row, inflating only what the next
rows need: a file cannot make it allocate more than a band, whatever its header claims, so it
reads textures far past the in-memory readers' MAX_PIXELS. Rows filtered with Average or Paeth
(other encoders) raise PngUnsupported: imageio's bounded Pillow path reads those.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from texgen.files import atomic_path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type <-> channel count (grey, grey+alpha, RGB, RGBA)
TYPE_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}
CHANNELS_TYPE = {c: t for t, c in TYPE_CHANNELS.items()}
IDAT_BYTES = 1 << 20
FILTER_SUB, FILTER_UP = 1, 2


class PngUnsupported(ValueError):
    """A PNG this streaming reader does not decode (palette, interlaced, Average/Paeth rows)."""


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def filter_rows(raw: np.ndarray, prev: np.ndarray, bpp: int) -> bytes:
    """PNG-filtered bytes of rows raw (n, row bytes) below the row prev (1, row bytes): each
    row 'Sub' (minus the pixel to its left) or 'Up' (minus the pixel above), whichever has
    the smaller sum of |bytes as signed| (libpng's heuristic), both vectorised. Average and
    Paeth, which other encoders add, depend on the decoded left neighbour, so a reader could
    not undo them a row at a time in numpy; they save only a few % more."""
    up = raw - np.concatenate([prev, raw[:-1]])                       # wraps mod 256
    sub = raw.copy()
    sub[:, bpp:] -= raw[:, :-bpp]
    use_sub = _cost(sub) < _cost(up)
    out = np.empty((len(raw), raw.shape[1] + 1), np.uint8)
    out[:, 0] = np.where(use_sub, FILTER_SUB, FILTER_UP)
    out[:, 1:] = np.where(use_sub[:, None], sub, up)
    return out.tobytes()


def _cost(rows: np.ndarray) -> np.ndarray:
    """Sum of |byte| per row, the bytes read as signed: small for rows of small steps."""
    return np.abs(rows.view(np.int8).astype(np.int16)).sum(axis=1, dtype=np.int64)


class PngWriter:
    """Write a width x height PNG of `channels` (1-4) at `bits` (8 or 16) to `path`, rows as
    they come (write(y, rows)); atomically: the file appears only when every row is written
    and the block ends without an error. level: zlib's (1 is fastest). text: {keyword: text}
    stored as tEXt chunks (Latin-1) before the pixels (read_text reads them back)."""

    def __init__(self, path, width: int, height: int, channels: int, bits: int = 8,
                 level: int = 6, text: dict[str, str] | None = None):
        if channels not in CHANNELS_TYPE or bits not in (8, 16) or min(width, height) < 1:
            raise ValueError(f"cannot write a {width}x{height} PNG of {channels} channels "
                             f"at {bits} bits")
        self.path, self.width, self.height = Path(path), width, height
        self.channels, self.bits, self.level = channels, bits, level
        self.dtype = np.dtype(">u2") if bits == 16 else np.dtype(np.uint8)
        self.text = dict(text or {})
        self._rows = 0

    def __enter__(self) -> "PngWriter":
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._file: BinaryIO = open(tmp, "wb")
            self._file.write(SIGNATURE + _chunk(b"IHDR", struct.pack(
                ">IIBBBBB", self.width, self.height, self.bits, CHANNELS_TYPE[self.channels],
                0, 0, 0)))
            for key, value in self.text.items():
                self._file.write(_chunk(b"tEXt", key.encode("latin-1") + b"\0"
                                        + value.encode("latin-1")))
        except BaseException as e:
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._z = zlib.compressobj(self.level)
        self._prev = np.zeros((1, self.width * self.channels * self.dtype.itemsize), np.uint8)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        return self

    def write(self, y: int, rows: np.ndarray) -> None:
        """Rows y.. of the image, (n, width, channels) uint8 / uint16 (or (n, width) grey)."""
        if y != self._rows:
            raise ValueError(f"PNG rows must come in order: got row {y}, expected {self._rows}")
        rows = np.asarray(rows)
        if rows.ndim == 2:
            rows = rows[..., None]
        if rows.shape[1:] != (self.width, self.channels) or self._rows + len(rows) > self.height:
            raise ValueError(f"rows of shape {rows.shape} do not fit a {self.width}x{self.height}"
                             f" PNG of {self.channels} channels below row {self._rows}")
        raw = np.ascontiguousarray(rows, self.dtype).reshape(len(rows), -1).view(np.uint8)
        self._emit(self._z.compress(filter_rows(raw, self._prev, self.channels * self.dtype.itemsize)))
        self._prev = raw[-1:].copy()
        self._rows += len(rows)

    def _emit(self, data: bytes, last: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._pending_bytes += len(data)
        if self._pending_bytes >= IDAT_BYTES or (last and self._pending):
            self._file.write(_chunk(b"IDAT", b"".join(self._pending)))
            self._pending, self._pending_bytes = [], 0

    def __exit__(self, kind, value, tb):
        try:
            if kind is None:
                if self._rows != self.height:
                    raise ValueError(f"{self.path}: {self._rows} of {self.height} rows written")
                self._emit(self._z.flush(), last=True)
                self._file.write(_chunk(b"IEND", b""))
        except BaseException as e:
            kind, value, tb = type(e), e, e.__traceback__
            self._file.close()
            self._atomic.__exit__(kind, value, tb)
            raise
        self._file.close()
        if kind is None:
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(kind, value, tb)
        return False


# ----------------------------------------------------------------------------- reading

def read_header(f: BinaryIO) -> tuple[int, int, int, int]:
    """(width, height, bits, channels) from an open PNG positioned at its start (left after
    IHDR). PngUnsupported for what read_png_rows cannot stream; ValueError if not a PNG."""
    head = f.read(33)
    if len(head) < 33 or head[:8] != SIGNATURE or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    if struct.unpack(">I", head[29:33])[0] != zlib.crc32(head[12:29]):
        raise ValueError("corrupt PNG header (CRC mismatch)")
    w, h, bits, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if ctype not in TYPE_CHANNELS or bits not in (8, 16) or comp or filt or interlace:
        raise PngUnsupported(f"PNG colour type {ctype} at {bits} bits"
                             f"{', interlaced' if interlace else ''}")
    if min(w, h) < 1:
        raise ValueError("PNG of no pixels")
    return w, h, bits, TYPE_CHANNELS[ctype]


def read_text(path) -> dict[str, str]:
    """The tEXt entries of a PNG written by PngWriter (those before its pixels); ValueError if
    it is not a whole PNG (no IEND chunk at its end)."""
    out = {}
    with open(path, "rb") as f:
        read_header(f)
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("truncated PNG")
            length, kind = struct.unpack(">I4s", head)
            if kind != b"tEXt":
                break
            body = f.read(length)
            f.read(4)
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        f.seek(-12, 2)
        if f.read(12) != _chunk(b"IEND", b""):
            raise ValueError("truncated PNG (no IEND chunk)")
    return out


def _idat(f: BinaryIO) -> Iterator[bytes]:
    """The bodies of a PNG's IDAT chunks in order, CRCs checked, up to IEND."""
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IDAT":
            body = f.read(length)
            crc = f.read(4)
            if len(body) != length or len(crc) != 4:
                raise ValueError("truncated PNG chunk IDAT")
            if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
                raise ValueError("corrupt PNG chunk IDAT (CRC mismatch)")
            yield body
        elif kind == b"IEND":
            return
        else:
            f.seek(length + 4, 1)                # ancillary chunks: skipped


def _inflate(chunks: Iterator[bytes], piece: int = 1 << 20) -> Iterator[bytes]:
    """The decompressed stream of the IDAT chunks, at most `piece` bytes at a time."""
    z = zlib.decompressobj()
    for body in chunks:
        while body and not z.eof:
            out = z.decompress(body, piece)
            body = z.unconsumed_tail
            if out:
                yield out
        if z.eof:
            return


def read_png_rows(path, band: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (y, rows) top to bottom: rows (<= band, width, channels) uint8 or uint16, of a PNG
    read_header accepts. Memory: a band of rows, a piece of inflated data, zlib's window."""
    with open(path, "rb") as f:
        w, h, bits, n = read_header(f)
        bpp = n * bits // 8
        stride = 1 + w * bpp
        stream = _inflate(_idat(f))
        data = bytearray()
        prev = np.zeros(w * bpp, np.uint8)
        for y in range(0, h, band):
            want = min(band, h - y) * stride
            while len(data) < want:
                more = next(stream, None)
                if more is None:
                    raise ValueError("PNG pixel data ends early (truncated?)")
                data += more
            raw = np.frombuffer(bytes(data[:want]), np.uint8).reshape(-1, stride)
            del data[:want]
            out = np.empty((len(raw), w * bpp), np.uint8)
            for i, row in enumerate(raw):
                prev = out[i] = _unfilter(row[0], row[1:], prev, bpp)
            if y + band >= h and (data or next(stream, b"")):   # a piece more: bounded
                raise ValueError("PNG pixel data has the wrong size (more than its header's)")
            if bits == 16:
                yield y, out.view(">u2").astype(np.uint16).reshape(len(raw), w, n)
            else:
                yield y, out.reshape(len(raw), w, n)


def _unfilter(kind: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """One row of filtered bytes -> its bytes (uint8; additions wrap mod 256)."""
    if kind == 0:
        return row.copy()
    if kind == 2:
        return row + prev
    if kind == 1:
        return np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
    if kind in (3, 4):
        raise PngUnsupported("PNG rows filtered with Average or Paeth")
    raise ValueError(f"bad PNG filter type {kind}")
