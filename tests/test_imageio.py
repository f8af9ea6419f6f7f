"""Image reading/writing: formats, precision, bad input, atomic writes. Images are made in tmp_path."""

import os

import numpy as np
import pytest
from PIL import Image

from texgen.errors import TexgenError
from texgen import files
from texgen.runtime import imageio
from texgen.files import atomic_path, atomic_write_bytes
from texgen.runtime.imageio import read_image, save_image


def _rgb8(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def test_png8_roundtrip_exact(tmp_path):
    px = _rgb8()
    save_image(tmp_path / "a.png", px / 255.0)
    assert np.array_equal(np.round(read_image(tmp_path / "a.png") * 255).astype(np.uint8), px)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png16_roundtrip_exact(tmp_path, channels):
    arr = np.random.default_rng(1).random((17, 23, channels)).astype(np.float32)
    save_image(tmp_path / "a.png", arr, bits=16)
    back = read_image(tmp_path / "a.png", channels=channels)
    assert back.shape == arr.shape and back.dtype == np.float32
    assert np.abs(back - arr).max() <= 1 / 65535


def test_png16_decoder_handles_all_filters(tmp_path):
    # Our writer only uses the Up filter; other encoders use all five. Encode rows with
    # each filter type in turn (straight from the PNG spec) and check the decoder undoes them.
    px = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    h, stride, bpp = px.shape[0], px.shape[1] * 3, 3
    rows = px.reshape(h, stride).astype(np.int16)
    enc = []
    for y in range(h):
        ft, cur = y % 5, rows[y]
        up = rows[y - 1] if y else np.zeros(stride, np.int16)
        left = np.concatenate([np.zeros(bpp, np.int16), cur[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int16), up[:-bpp]])
        p = left + up - ul
        pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        pred = [0 * cur, left, up, (left + up) >> 1, paeth][ft]
        enc.append(bytes([ft]) + ((cur - pred) & 255).astype(np.uint8).tobytes())
    out = imageio._png_unfilter(b"".join(enc), h, px.shape[1], bpp)
    assert np.array_equal(out.reshape(px.shape), px)


def test_palette_with_transparency_and_la(tmp_path):
    p = Image.fromarray(_rgb8()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    Image.fromarray(_rgb8()).convert("LA").save(tmp_path / "la.png")
    for name in ("p.png", "la.png"):
        arr = read_image(tmp_path / name)
        assert arr.shape == (20, 30, 3) and arr.dtype == np.float32
        assert 0 <= arr.min() and arr.max() <= 1
    assert read_image(tmp_path / "p.png", channels=4)[..., 3].min() == 0.0  # alpha kept on request


def test_i16_grayscale(tmp_path):
    g = np.random.default_rng(3).integers(0, 65536, (12, 14), dtype=np.uint16)
    Image.fromarray(g).save(tmp_path / "g.png")     # 16-bit grey PNG -> our decoder
    Image.fromarray(g).save(tmp_path / "g.tif")     # I;16 TIFF -> Pillow path
    for name in ("g.png", "g.tif"):
        rgb = read_image(tmp_path / name)
        assert rgb.shape == (12, 14, 3)
        assert np.abs(rgb[..., 1] - g / 65535).max() < 1e-6
        assert read_image(tmp_path / name, channels=1).shape == (12, 14, 1)
    assert np.all(read_image(tmp_path / "g.png", channels=4)[..., 3] == 1.0)


def test_exif_rotated_jpeg_is_transposed(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    Image.fromarray(_rgb8(20, 30)).save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (30, 20, 3)


@pytest.mark.parametrize("suffix", [".tga", ".webp", ".tif", ".jpg", ".bmp"])
def test_other_formats_load_rgb(tmp_path, suffix):
    Image.fromarray(_rgb8()).save(tmp_path / f"x{suffix}")
    arr = read_image(tmp_path / f"x{suffix}")
    assert arr.shape == (20, 30, 3) and arr.dtype == np.float32


@pytest.mark.parametrize("suffix", [".tga", ".webp", ".tif", ".jpg"])
def test_save_other_formats(tmp_path, suffix):
    save_image(tmp_path / f"x{suffix}", np.random.default_rng(0).random((16, 16, 4)))
    assert read_image(tmp_path / f"x{suffix}").shape == (16, 16, 3)


def test_bad_files(tmp_path):
    with pytest.raises(TexgenError, match="no such"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(TexgenError, match="noise.png"):
        read_image(tmp_path / "noise.png")
    for bits in (8, 16):
        save_image(tmp_path / "ok.png", np.random.default_rng(0).random((64, 64, 3)), bits=bits)
        data = (tmp_path / "ok.png").read_bytes()
        (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
        with pytest.raises(TexgenError, match="cut.png"):
            read_image(tmp_path / "cut.png")


def test_size_limits(tmp_path):
    save_image(tmp_path / "tiny.png", np.zeros((4, 40, 3)))
    with pytest.raises(TexgenError, match="smaller"):
        read_image(tmp_path / "tiny.png")
    assert read_image(tmp_path / "tiny.png", min_size=4).shape == (4, 40, 3)
    save_image(tmp_path / "big.png", np.zeros((100, 100, 3)))
    save_image(tmp_path / "big16.png", np.zeros((100, 100, 3)), bits=16)
    for name in ("big.png", "big16.png"):
        with pytest.raises(TexgenError, match="Mpx"):
            read_image(tmp_path / name, max_pixels=5000)


def test_save_rejects_bad_requests(tmp_path):
    with pytest.raises(TexgenError, match="unknown image type"):
        save_image(tmp_path / "x.xyz", np.zeros((8, 8, 3)))
    with pytest.raises(TexgenError, match="16-bit"):
        save_image(tmp_path / "x.jpg", np.zeros((8, 8, 3)), bits=16)
    with pytest.raises(TexgenError, match="shape"):
        save_image(tmp_path / "x.png", np.zeros((8, 8, 2)))


def test_save_creates_parents_and_clips(tmp_path):
    save_image(tmp_path / "a" / "b" / "x.png", np.full((8, 8), 2.0))
    assert read_image(tmp_path / "a" / "b" / "x.png").min() == 1.0


def test_atomic_failure_when_directory_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TexgenError, match="cannot write"):
        save_image(tmp_path / "file" / "x.png", np.zeros((8, 8, 3)))
    assert _leftovers(tmp_path) == []


def test_atomic_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.png"
    save_image(target, np.zeros((8, 8, 3)))
    before = target.read_bytes()

    def fail(*a, **k):
        raise OSError(28, "No space left on device")  # ENOSPC

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(TexgenError, match="disk full writing"):
        save_image(target, np.ones((8, 8, 3)))
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_atomic_path_for_library_writers(tmp_path):
    target = tmp_path / "w.npy"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npy"
        np.save(tmp, np.arange(3))
    assert np.array_equal(np.load(target), np.arange(3))
    with pytest.raises(RuntimeError):  # non-OS errors propagate, temp file removed
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert np.array_equal(np.load(target), np.arange(3))
    assert _leftovers(tmp_path) == []
    atomic_write_bytes(tmp_path / "b.bin", b"abc")
    assert (tmp_path / "b.bin").read_bytes() == b"abc"
    # Final file gets umask permissions, not the temp file's private 0600.
    assert os.stat(tmp_path / "b.bin").st_mode & 0o777 == 0o666 & ~files._UMASK


@pytest.mark.parametrize("bits", [8, 16])
def test_integer_pixels_are_written_as_they_are(tmp_path, bits):
    px8 = _rgb8()
    px16 = np.minimum(px8.astype(np.int32) * 257 + 3, 65535).astype(np.uint16)   # off the 257 grid: rounds to px8
    save_image(tmp_path / "a.png", px16 if bits == 16 else px8, bits=bits)
    back = read_image(tmp_path / "a.png")
    want = (px16 / 65535.0) if bits == 16 else (px8 / 255.0)
    assert np.abs(back - want).max() <= 1e-6
    # the other depth is rescaled, not clipped as if it were [0, 1] floats
    save_image(tmp_path / "b.png", px8 if bits == 16 else px16, bits=bits)
    assert np.abs(read_image(tmp_path / "b.png") - px8 / 255.0).max() <= 1e-6
    with pytest.raises(TexgenError, match="type int32"):
        save_image(tmp_path / "c.png", px8.astype(np.int32), bits=bits)
