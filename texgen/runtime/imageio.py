"""Reading and writing texture images, with atomic writes.

Only numpy, Pillow and the standard library are imported here: the runtime that
paints textures from an exported ONNX model must work without torch.

Conventions:
* Pixels are float32 arrays H x W x C with values in [0, 1].
* Alpha is not a texture channel: it is dropped unless the caller asks for
  ``channels=4`` (then it is kept, and filled with 1.0 when the file has none).
  It is dropped, not composited: the colour under transparent pixels is kept.
* 16-bit PNGs keep their full precision. Pillow truncates 16-bit RGB(A) PNGs
  to 8 bits and cannot write them at all, so a small numpy+zlib PNG codec
  handles every 16-bit non-interlaced PNG (interlaced ones fall back to Pillow).
* Every write goes to a temp file in the target's directory and is renamed
  onto the target only once complete (texgen/files.py), so a crash or a full disk
  never leaves a half-written texture in place of a good one.
* Reading is bounded whatever a file claims: its size (MAX_FILE_BYTES), its pixels
  (MAX_PIXELS, checked from the header before anything is decoded) and the bytes its
  compressed data may inflate to (exactly what those pixels need) are all checked before
  the memory is allocated, so a small crafted file cannot exhaust memory.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from texgen.errors import TexgenError
from texgen.files import atomic_path
from texgen.runtime.png import SIGNATURE, TYPE_CHANNELS, PngWriter

__all__ = ["read_image", "save_image", "resize", "MAX_PIXELS", "MAX_FILE_BYTES"]

_PNG_SIG = SIGNATURE
# PNG colour type -> channel count (grey, grey+alpha, RGB, RGBA); no palette at 16 bits.
_PNG_TYPE_CHANNELS = TYPE_CHANNELS
# Reading limits (the README's "huge images" refused in one line): 64 Mpx, e.g. 8192 x 7812,
# and a file no bigger than such an image stored uncompressed at 16-bit RGBA (plus 1 %).
MAX_PIXELS = 64_000_000
BYTES_PER_PIXEL_MAX = 8


def max_file_bytes(max_pixels: float = MAX_PIXELS) -> int:
    """The largest image file read: max_pixels of uncompressed 16-bit RGBA, plus 1 % and 1 MiB
    of headers and row filters; anything bigger is not an image of the allowed size."""
    return int(max_pixels * BYTES_PER_PIXEL_MAX * 1.01) + 2 ** 20


MAX_FILE_BYTES = max_file_bytes()
# Suffix -> Pillow format name for 8-bit writes.
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                 ".tif": "TIFF", ".tiff": "TIFF", ".tga": "TGA"}


# --------------------------------------------------------------------------- resizing

def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W x C float32 -> height x width x C, Lanczos (antialiased when shrinking), each
    channel at full float precision."""
    bands = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), mode="F")
                        .resize((width, height), Image.LANCZOS)) for c in range(img.shape[2])]
    return np.stack(bands, axis=2).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- reading

def read_image(path, channels: int = 3, *, min_size: int = 8,
               max_pixels: float = MAX_PIXELS) -> np.ndarray:
    """Read an image file as float32 H x W x ``channels`` in [0, 1].

    ``channels``: 3 = RGB (grey is replicated, alpha dropped), 1 = grey (colour is
    converted to luminance), 4 = RGBA (alpha 1.0 where the file has none).
    Raises TexgenError for a missing, corrupt or truncated file, one whose sides are
    below ``min_size`` or whose pixel count is above ``max_pixels``, or a file bigger than
    such an image can be (max_file_bytes), before decoding it.
    """
    path = Path(path)
    if channels not in (1, 3, 4):
        raise TexgenError(f"channels must be 1, 3 or 4, not {channels!r}")
    if not path.is_file():
        raise TexgenError(f"{path}: no such image file")

    def check_size(w: int, h: int) -> None:
        # Called from the header, before any pixel is decoded, so a huge image
        # cannot exhaust memory first.
        if w * h > max_pixels:
            raise TexgenError(f"{path} is {w}x{h} = {w * h / 1e6:.3g} Mpx, more than the "
                              f"{max_pixels / 1e6:.3g} Mpx limit")
        if min(w, h) < min_size:
            raise TexgenError(f"{path} is {w}x{h}, smaller than the {min_size} px minimum side")

    try:
        check_file_bytes(path, max_file_bytes(max_pixels))
        with open(path, "rb") as f:
            head = f.read(33)
        if _is_png16(head):
            arr, has_alpha = _read_png16(path.read_bytes(), check_size)
        else:
            arr, has_alpha = _read_pillow(path, check_size, max_pixels)
    except TexgenError:
        raise
    except Exception as e:  # Pillow/zlib raise many types for bad data; all mean "unreadable".
        raise TexgenError(f"{path} is not a readable image ({type(e).__name__}: {e})") from e
    return _to_channels(arr, has_alpha, channels)


# The streaming reader (runtime/png.py) holds a band of rows whatever the image's size, so its
# limit is the largest texture texgen paints, not what fits in memory.
STREAM_MAX_SIDE = 65536


def image_size(path) -> tuple[int, int] | None:
    """(width, height) of a PNG from its header (None for another file or a damaged one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != SIGNATURE or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def read_image_bands(path, band: int | None = None, *, min_size: int = 8):
    """A PNG read band by band: ((width, height), iterator of (y, float32 rows (n, w, 3) in
    [0, 1])) as read_image(path) would give them (grey replicated, alpha dropped), in the
    memory of a band (default about a megapixel), for images up to STREAM_MAX_SIDE px a side;
    None for a file that is not
    a PNG runtime/png.py streams (read_image reads those, up to MAX_PIXELS). The iterator
    raises png.PngUnsupported at a row filtered with Average or Paeth (other encoders' PNGs:
    read_image reads them too), TexgenError for a damaged file."""
    from texgen.runtime.png import PngUnsupported, read_header, read_png_rows
    path = Path(path)
    if not path.is_file():
        raise TexgenError(f"{path}: no such image file")
    try:
        with open(path, "rb") as f:
            w, h, bits, n = read_header(f)
    except (OSError, ValueError):           # not a PNG, or palette / interlaced / < 8 bits
        return None
    check_file_bytes(path, max_file_bytes(STREAM_MAX_SIDE ** 2))
    if max(w, h) > STREAM_MAX_SIDE or min(w, h) < min_size:
        raise TexgenError(f"{path} is {w}x{h}: each side must be {min_size}..{STREAM_MAX_SIDE} px")
    scale = np.float32(65535.0 if bits == 16 else 255.0)
    band = band or max(1, 2 ** 20 // w)

    def rows():
        try:
            for y, px in read_png_rows(path, band):
                yield y, _to_channels(px.astype(np.float32) / scale, n in (2, 4), 3)
        except PngUnsupported:
            raise
        except (OSError, ValueError, zlib.error) as e:
            raise TexgenError(f"{path} is not a readable image ({type(e).__name__}: {e})") from None
    return (w, h), rows()


def check_file_bytes(path: Path, limit: int) -> None:
    """TexgenError for a file bigger than `limit` bytes (before any of it is read)."""
    size = path.stat().st_size
    if size > limit:
        raise TexgenError(f"{path} is {size / 2 ** 20:.0f} MiB, more than an image of the "
                          f"allowed size can be ({limit / 2 ** 20:.0f} MiB)")


def _read_pillow(path: Path, check_size, max_pixels: float) -> tuple[np.ndarray, bool]:
    """Decode with Pillow -> (float32 H x W x n, last channel is alpha)."""
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Pillow's own bomb guard would only warn (or raise its own error at 2x);
        # make it strict at our limit and let read_image turn it into a TexgenError.
        Image.MAX_IMAGE_PIXELS = int(max_pixels)
        with warnings.catch_warnings():
            # Pillow's notes on damaged metadata (corrupt EXIF, TIFF tags past the end) would
            # be lines beside ours: the pixels decode or the read fails with one line
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(path)
            except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
                raise TexgenError(f"{path} is more than the {max_pixels / 1e6:.3g} Mpx limit "
                                  f"(a decompression bomb?)") from e
            with im:
                check_size(*im.size)
                im.load()  # decode now so truncation errors surface here
                im = ImageOps.exif_transpose(im)  # camera photos are stored rotated
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit

    mode = im.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # High bit-depth grey (16-bit PNG/TIFF); 'I' is assumed to hold 16-bit values.
        return np.clip(np.asarray(im, np.float32) / 65535.0, 0, 1)[..., None], False
    if mode == "F":
        return np.clip(np.asarray(im, np.float32), 0, 1)[..., None], False
    if mode in ("P", "PA"):
        # Expand the palette; go through RGBA so transparency is honoured (and
        # Pillow does not warn about palette transparency).
        alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if alpha else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):  # CMYK, YCbCr, LAB, RGBa, ...
        im = im.convert("RGBA" if mode.endswith(("A", "a")) else "RGB")
    arr = np.asarray(im, np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr, im.mode in ("LA", "RGBA")


def _to_channels(arr: np.ndarray, has_alpha: bool, channels: int) -> np.ndarray:
    """(H x W x n with optional trailing alpha) -> H x W x channels float32."""
    colour = arr[..., :-1] if has_alpha else arr
    if channels == 1:
        if colour.shape[2] == 3:  # ITU-R 601 luma, as Pillow's convert('L')
            colour = colour @ np.array([[0.299], [0.587], [0.114]], np.float32)
        return np.ascontiguousarray(colour, np.float32)
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    if channels == 4:
        alpha = arr[..., -1:] if has_alpha else np.ones_like(colour[..., :1])
        colour = np.concatenate([colour, alpha], axis=2)
    return np.ascontiguousarray(colour, np.float32)


def _is_png16(head: bytes) -> bool:
    """True for a 16-bit non-interlaced PNG (which our own decoder handles)."""
    return (len(head) >= 29 and head[:8] == _PNG_SIG and head[12:16] == b"IHDR"
            and head[24] == 16 and head[28] == 0)


def _read_png16(data: bytes, check_size) -> tuple[np.ndarray, bool]:
    """Decode a 16-bit non-interlaced PNG -> (float32 H x W x n, has alpha)."""
    pos, idat, ihdr = 8, [], None
    while True:
        if pos + 8 > len(data):
            raise ValueError("truncated PNG (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"truncated PNG chunk {ctype!r}")
        if struct.unpack(">I", crc)[0] != zlib.crc32(ctype + body):
            raise ValueError(f"corrupt PNG chunk {ctype!r} (CRC mismatch)")
        pos += 12 + length
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
            check_size(ihdr[0], ihdr[1])
        elif ihdr is None:
            raise ValueError("PNG without an IHDR chunk first")
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    w, h, depth, ctype_, comp, filt, interlace = ihdr
    if ctype_ not in _PNG_TYPE_CHANNELS or comp or filt or interlace:
        raise ValueError(f"unsupported 16-bit PNG layout (colour type {ctype_})")
    n = _PNG_TYPE_CHANNELS[ctype_]
    size = h * (1 + w * n * 2)                  # filter byte + 16-bit samples, per row
    # inflate at most one byte more than the header's size needs: a small file of highly
    # compressible data (a "zip bomb") cannot grow past what the checked size allows
    inflate = zlib.decompressobj()
    raw = inflate.decompress(b"".join(idat), size + 1)
    if len(raw) != size:
        raise ValueError("PNG pixel data has the wrong size")
    rows = _png_unfilter(raw, h, w, bpp=n * 2)
    arr = rows.view(">u2").reshape(h, w, n).astype(np.float32) / 65535.0
    return arr, n in (2, 4)


def _png_unfilter(raw: bytes, h: int, w: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters -> uint8 array h x (w*bpp).

    Sub/Average/Paeth make each pixel depend on its left, upper and upper-left
    neighbours, so a row-by-row pass would need a Python loop per pixel. Instead
    we sweep anti-diagonals (x + y = k): every pixel on one is independent of
    the others, so each step is vectorised and the loop runs only h + w times.
    """
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * bpp)
    ftype, filtered = rows[:, 0], rows[:, 1:]
    if ftype.max(initial=0) > 4:
        raise ValueError("bad PNG filter type")
    if not ftype.any():  # all rows unfiltered: nothing to do
        return np.ascontiguousarray(filtered)
    f = filtered.reshape(h, w, bpp).astype(np.int16)
    out = np.zeros((h + 1, w + 1, bpp), np.int16)  # row 0 / column 0 = zero border
    for k in range(h + w - 1):
        y = np.arange(max(0, k - w + 1), min(h, k + 1))
        x = k - y
        a, b, c = out[y + 1, x], out[y, x + 1], out[y, x]  # left, up, up-left
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.choose(ftype[y][:, None], [0, a, b, (a + b) >> 1, paeth])
        out[y + 1, x + 1] = (f[y, x] + pred) & 255
    return out[1:, 1:].astype(np.uint8).reshape(h, w * bpp)


# --------------------------------------------------------------------------- writing

def save_image(path, array, bits: int = 8, png_level: int = 6) -> None:
    """Write ``array`` (H x W or H x W x C, C in 1/3/4) atomically.

    Float arrays are clipped to [0, 1]. uint8 (0..255) and uint16 (0..65535) arrays are written
    as they are when their depth is ``bits`` (no float copy of a huge canvas), else rescaled.
    Format by suffix: .png (8 or 16 bit), .jpg/.jpeg/.webp/.tif/.tiff/.tga (8 bit).
    JPEG has no alpha, so a 4th channel is dropped there.
    png_level: zlib level 0-9 of PNGs. 1 encodes a 2K normal map 4x faster than 6 (0.29 s vs
    1.26 s, 22 % bigger file): the Blender add-on's choice, where Generate waits on it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SAVE_FORMATS:
        raise TexgenError(f"cannot save {path}: unknown image type {suffix or '(no suffix)'}; "
                          f"use one of {', '.join(sorted(_SAVE_FORMATS))}")
    if bits not in (8, 16) or (bits == 16 and suffix != ".png"):
        raise TexgenError(f"cannot save {path} with {bits} bits: 16-bit output is PNG only")
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape:
        raise TexgenError(f"cannot save {path}: expected H x W x 1/3/4 pixels, got shape {arr.shape}")
    pixels = _quantize(arr, bits)

    if suffix == ".png":                # one PNG codec, streamed by bands (runtime/png.py):
        with PngWriter(path, pixels.shape[1], pixels.shape[0], pixels.shape[2], bits,
                       png_level) as png:   # Pillow cannot write 16-bit colour
            for y in range(0, len(pixels), 256):    # bands: the filtered copy stays small
                png.write(y, pixels[y:y + 256])
        return
    fmt = _SAVE_FORMATS[suffix]
    if fmt == "JPEG" and pixels.shape[2] == 4:
        pixels = pixels[..., :3]
    pixels = np.ascontiguousarray(pixels)
    im = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    del pixels
    # encode straight into the temp file: no in-memory copy of the (possibly huge) file
    with atomic_path(path) as tmp:
        try:
            im.save(tmp, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else
                                        {}))
        except OSError as e:
            if e.errno is not None:     # disk full, permissions: atomic_path says which
                raise
            raise TexgenError(f"cannot encode {path} as {fmt}: {e}") from e
        except (ValueError, KeyError) as e:
            raise TexgenError(f"cannot encode {path} as {fmt}: {e}") from e


def _quantize(arr: np.ndarray, bits: int) -> np.ndarray:
    """H x W x C pixels -> uint8 (bits 8) or uint16 (bits 16); integer input of the right
    depth is returned as is (a view, no copy)."""
    want = np.uint16 if bits == 16 else np.uint8
    if arr.dtype == want:
        return arr
    if arr.dtype == np.uint8:                       # 8 -> 16 bit: 255 * 257 = 65535
        return arr.astype(np.uint16) * np.uint16(257)
    if arr.dtype == np.uint16:                      # 16 -> 8 bit, rounded
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.dtype.kind not in "fb":
        raise TexgenError(f"cannot save pixels of type {arr.dtype}: use float in [0, 1], "
                          f"uint8 or uint16")
    return float_to_uint(arr.astype(np.float32), want)


def float_to_uint(x: np.ndarray, dtype) -> np.ndarray:
    """float32 pixels in [0, 1] -> rounded uint8 / uint16 (NaN -> 0, clipped).

    Works in place on x (callers pass a fresh array), so a big canvas is not copied twice.
    """
    np.nan_to_num(x, copy=False)
    np.clip(x, 0.0, 1.0, out=x)
    x *= np.float32(np.iinfo(dtype).max)
    np.rint(x, out=x)
    return x.astype(dtype)
