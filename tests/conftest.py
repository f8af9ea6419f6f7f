"""Shared tiny models and images: every test here must stay fast on a busy 2-core machine."""

import numpy as np
import pytest
import torch

from texgen.train.batchnorm import calibrate_batchnorm
from texgen.models.psgan import Generator, PSGANConfig

# the test machine is small and shared: one thread per op avoids oversubscription
torch.set_num_threads(1)


def tiny_config(**kw) -> PSGANConfig:
    base = dict(n_global=4, n_local=4, n_periodic=2, wave_hidden=8,
                g_widths=(16, 8, 8, 8), d_widths=(8, 8, 8, 8))
    base.update(kw)
    return PSGANConfig(**base)


def seam_ratio(img: np.ndarray, axis: int) -> float:
    """Mean |last - first| along `axis` over the mean |neighbour difference| inside.

    About 1 for an image that wraps around; far above 1 where the edges do not meet.
    """
    a = np.moveaxis(np.asarray(img, np.float64), axis, -1)
    seam = np.abs(a[..., -1] - a[..., 0]).mean()
    inner = np.abs(np.diff(a, axis=-1)).mean()
    return float(seam / inner)


def stripes(h: int = 64, w: int = 64, period: float = 8.0, seed: int = 0) -> np.ndarray:
    """An H x W x 3 float32 image in [0, 1]: vertical stripes plus a little noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(w, dtype=np.float32)
    s = 0.5 + 0.35 * np.sin(2 * np.pi * x / period)
    img = np.broadcast_to(s[None, :, None], (h, w, 3)).astype(np.float32)
    img = img + 0.1 * rng.random((h, w, 3), dtype=np.float32)
    img[..., 1] *= 0.8
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def png_bytes(w: int, h: int, depth: int, colour: int, idat: bytes, interlace: int = 0,
              crc_ok: bool = True) -> bytes:
    """A PNG file as bytes with any header fields and IDAT body (crc_ok False: a wrong CRC on
    the IDAT chunk), for crafting the files a hostile user feeds the readers."""
    import struct
    import zlib

    def chunk(kind, body, ok=True):
        crc = zlib.crc32(kind + body) ^ (0 if ok else 1)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat, crc_ok)
            + chunk(b"IEND", b""))


def png16_bomb(w: int = 64, h: int = 64, inflated: int = 256 << 20) -> bytes:
    """A 16-bit RGB PNG claiming w x h whose pixel data inflates to `inflated` bytes, far more
    than the header needs (a "zip bomb": about inflated / 1000 bytes on disk)."""
    import zlib
    z, block = zlib.compressobj(9), bytes(1 << 20)
    idat = b"".join(z.compress(block) for _ in range(inflated >> 20)) + z.flush()
    return png_bytes(w, h, 16, 2, idat)


@pytest.fixture(scope="session")
def tiny_cfg() -> PSGANConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_G(tiny_cfg) -> Generator:
    """An untrained tiny PSGAN generator in eval mode with exact batch-norm statistics."""
    torch.manual_seed(0)
    G = Generator(tiny_cfg)
    calibrate_batchnorm(G, cells=3, batches=2, batch=2)
    return G.eval()


def _with_pixel_noise(**kw) -> Generator:
    """A tiny generator with pixel noise, at a strength that shows (training starts it at 0)."""
    torch.manual_seed(0)
    G = Generator(tiny_config(pixel_noise=True, **kw))
    with torch.no_grad():
        for strength in G.noise_strength:
            strength.fill_(0.5)
    calibrate_batchnorm(G, cells=3, batches=2, batch=2)
    return G.eval()


@pytest.fixture(scope="session")
def noisy_G() -> Generator:
    """tiny_G's kind with pixel noise."""
    return _with_pixel_noise()


@pytest.fixture(scope="session")
def layered_G() -> Generator:
    """tiny_G's kind with its waves at every layer's resolution too (wave_layers), and pixel
    noise beside them, as in the fast preset."""
    return _with_pixel_noise(wave_layers=True)


@pytest.fixture(scope="session")
def chroma_G() -> Generator:
    """tiny_G's kind with colour at half resolution (half_chroma)."""
    torch.manual_seed(0)
    G = Generator(tiny_config(half_chroma=True))
    calibrate_batchnorm(G, cells=3, batches=2, batch=2)
    return G.eval()


# ----------------------------------------------------------------------------- the command line

@pytest.fixture(scope="session")
def tiny_models(tiny_G, tmp_path_factory):
    """(exemplar PNG, model folder trained 2 iterations on it, its .onnx export): the tiny
    PSGAN every command-line robustness test paints with."""
    from texgen.export.onnx_export import export_onnx
    from texgen.runtime.imageio import save_image
    from texgen.train.psgan import TrainConfig, train
    d = tmp_path_factory.mktemp("tiny_models")
    ex = d / "stripes.png"
    save_image(ex, stripes(64, 64))
    cfg = TrainConfig(iters=2, batch=2, patch=32, ckpt_every=2, preview_every=2)
    train([stripes(64, 64)], d / "model", tiny_config(), cfg, log=lambda *a: None,
          provenance={"method": "psgan", "preset": "fast", "exemplars": [ex.name]})
    export_onnx(d / "model", d / "tiny.onnx")
    return ex, d / "model", d / "tiny.onnx"


@pytest.fixture
def tiny_preset(monkeypatch):
    """`texgen train` with the tiny model and 2 iterations as its "fast" preset."""
    from texgen.train import psgan
    from texgen.train.psgan import TrainConfig
    monkeypatch.setitem(psgan.PRESETS, "fast", (tiny_config(), TrainConfig(
        iters=2, batch=2, patch=32, ckpt_every=2, preview_every=2)))


@pytest.fixture
def unwritable(tmp_path):
    """A folder nothing can be written into: a read-only file system when running as root
    (mode bits do not stop root), else a folder without write permission."""
    import os
    import subprocess
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)],
                       capture_output=True)
    if r.returncode:
        pytest.skip("running as root where no read-only file system can be mounted")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], capture_output=True)


def one_error_line(res, match: str | None = None) -> str:
    """A CliRunner result that refused its input the documented way: exit status 1 through
    sys.exit (no escaped exception), the last line 'error: ...', no traceback, no other
    error line. Returns that line."""
    import re
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    try:
        err = res.stderr                # stdout's buffered lines may land after it in .output
    except ValueError:                  # click < 8.2 mixing stderr into stdout
        err = res.output
    lines = [l for l in re.split(r"[\r\n]+", err) if l.strip()]
    errors = [l for l in lines if "error:" in l]
    assert len(errors) == 1 and lines[-1].startswith("error: "), res.output
    assert "texgen bug" not in lines[-1], lines[-1]
    if match:
        assert re.search(match, lines[-1]), lines[-1]
    return lines[-1]
