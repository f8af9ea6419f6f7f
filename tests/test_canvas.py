"""The painting path (runtime/canvas.py): windows, sizes that are not whole cells, bounded
memory, streamed PNGs, UDIM sets, and one Painter for every kind of model."""

import json
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import one_error_line, seam_ratio
from texgen import checkpoint
from texgen.cli import main as cli
from texgen.errors import TexgenError
from texgen.runtime.canvas import Canvas, PixelSink, paint_to_file
from texgen.runtime.imageio import read_image
from texgen.runtime.onnx_painter import OnnxPainter
from texgen.runtime.resample import Axis, resample
from texgen.runtime.tiling import Cancelled, to_pixels

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def texnet_painter(tmp_path_factory):
    """A tiny untrained Texture Network (4 px cells, margin 4) with exact batch-norm
    statistics, as a TorchPainter."""
    from texgen.models.texnet import TexNet, TexNetConfig
    from texgen.paint import TorchPainter
    from texgen.train.batchnorm import calibrate_batchnorm
    torch.manual_seed(0)
    G = TexNet(TexNetConfig(levels=3, noise=2, width=4))
    calibrate_batchnorm(G, cells=3, batches=2, batch=2)
    d = tmp_path_factory.mktemp("texnet")
    checkpoint.save_model(d, G.eval(), {"config": G.cfg.to_dict(), "provenance": {}})
    return TorchPainter(d)


@pytest.fixture(scope="module")
def onnx_painter(tiny_models):
    return OnnxPainter(tiny_models[2], device="cpu", threads=1)


# ----------------------------------------------------------------------------- resampling

def through(src: np.ndarray, a: Axis, axis: int) -> np.ndarray:
    """src (a torus along `axis`) through the taps of Axis a, wrapping (the taps' unwrapped
    source px taken modulo the torus)."""
    idx, w = a.taps(0, a.size)
    part = np.take(src, np.arange(idx.min(), idx.max() + 1) % src.shape[axis], axis=axis)
    return resample(part, idx - idx.min(), w, axis)


def test_periodic_kernel_wraps_and_keeps_waves_at_any_length():
    """Texture px i reads the torus around (i + 0.5) m / n - 0.5 with wrapping taps: the
    result is a torus of n px (it tiles), odd or not, and a wave keeps its amplitude (the
    Fourier resampler halved one frequency at odd lengths)."""
    m = 256
    x = np.arange(m) / m
    for n in (251, 257, 200, 301, 129):
        idx, w = Axis(n, m).taps(0, n)
        np.testing.assert_allclose(w.sum(axis=1), 1, atol=1e-6)
        for k in (1, 7, 16):                # periods 256, 37 and 16 px of the torus
            src = np.cos(2 * np.pi * k * x).astype(np.float32)[None]
            out = through(src, Axis(n, m), axis=1)[0]
            want = np.cos(2 * np.pi * k * (np.arange(n) + 0.5) / n - np.pi * k / m)
            assert np.abs(out - want).max() < {1: 1e-3, 7: 5e-3, 16: 2e-2}[k], (n, k)
        # a smooth random torus (random harmonics up to period 16 px): its wrap (last ->
        # first) is a step like any other
        rng = np.random.default_rng(n)
        f = np.fft.irfft(rng.normal(size=(200, 17)) + 1j * rng.normal(size=(200, 17)), m)
        out = through(f.astype(np.float32), Axis(n, m), axis=1)
        assert seam_ratio(out, axis=1) < 1.2
    # whole cells and crops of a bigger torus are not resampled: the identity, a view
    idx, w = Axis(64, 64).taps(3, 9)
    assert w is None and idx[:, 0].tolist() == list(range(3, 9))
    assert Axis(60, 96, crop=True).identity


def test_sizes_that_are_not_whole_cells_wrap(tiny_G, texnet_painter):
    from texgen.runtime.canvas import synthesize
    from texgen.paint import torch_runner
    cfg = tiny_G.cfg
    for img in (synthesize(torch_runner(tiny_G), cfg.layout, cfg.scale, tiny_G.margin, 100, 70),
                texnet_painter.paint(37, 29, seed=2)):
        assert np.isfinite(img).all() and img.std() > 1e-3
        assert seam_ratio(img, axis=2) <= 1.5 and seam_ratio(img, axis=1) <= 1.5


def test_no_tileable_is_a_crop_of_a_whole_torus_not_resampled(onnx_painter):
    p = onnx_painter
    c = Canvas(100, 70, p.scale, tileable=False)
    H, W = c.cells
    assert H * p.scale >= 70 * 5 // 4 and W * p.scale >= 100 * 5 // 4
    crop = p.paint(100, 70, seed=3, tileable=False)
    torus = p.paint(W * p.scale, H * p.scale, seed=3)
    assert np.abs(crop - torus[:, :70, :100]).max() < 1e-5


@pytest.fixture(scope="module")
def zoomed_painters(tiny_G, tmp_path_factory):
    """(TorchPainter, OnnxPainter) of tiny_G's weights as a model trained on a photo resampled
    by 0.9 (PSGANConfig.zoom), and a TorchPainter of the same weights at zoom 1."""
    from dataclasses import replace
    from texgen.export.onnx_export import export_onnx
    from texgen.paint import TorchPainter
    d = tmp_path_factory.mktemp("zoom")
    for name, zoom in (("one", 1.0), ("zoomed", 0.9)):
        cfg = replace(tiny_G.cfg, zoom=zoom)
        checkpoint.save_model(d / name, tiny_G, {"config": cfg.to_dict(), "provenance": {}})
    export_onnx(d / "zoomed", d / "zoomed.onnx")
    return (TorchPainter(d / "zoomed"), OnnxPainter(d / "zoomed.onnx", device="cpu", threads=1),
            TorchPainter(d / "one"))


def test_a_zoomed_model_paints_its_torus_resampled_to_the_photos_px(zoomed_painters):
    """A model that learned from a photo resampled by zoom paints the torus of whole cells of
    its own px (416 px at zoom 0.9: 12 cells, not 13) resampled to the texture's: features at
    the photo's size, and the texture still wraps; the ONNX file carries the zoom."""
    zp, onnx, one = zoomed_painters
    s = zp.scale
    assert zp.zoom == onnx.zoom == 0.9 and one.zoom == 1.0
    c = Canvas(416, 96, s, zoom=0.9)
    assert c.cells == (3, 12) and Canvas(416, 96, s).cells == (3, 13)
    torus = one.paint(12 * s, 3 * s, seed=3)                  # whole cells: not resampled
    want = through(through(torus, c.axes[0], axis=1), c.axes[1], axis=2)
    got = zp.paint(416, 96, seed=3)
    assert got.shape == (3, 96, 416) and np.abs(got - want).max() < 1e-5
    assert np.abs(onnx.paint(416, 96, seed=3) - got).max() < 1e-4
    assert seam_ratio(got, axis=2) <= 1.5 and seam_ratio(got, axis=1) <= 1.5
    for x, y, w, h in ((0, 0, 416, 96), (37, 5, 101, 60), (400, 90, 16, 6)):
        part = zp.paint(416, 96, seed=3, window=(x, y, w, h), tile=1)
        assert np.abs(part - got[:, y:y + h, x:x + w]).max() < 1e-5


def test_a_zoomed_no_tileable_texture_is_a_resampled_crop_of_a_bigger_torus(zoomed_painters):
    """Texture px i reads the bigger torus around (i + 0.5) zoom - 0.5: its edges come from
    places a quarter of the torus apart, so they never meet."""
    zp, _, one = zoomed_painters
    c = Canvas(100, 70, zp.scale, tileable=False, zoom=0.9)
    H, W = c.cells
    rows, cols = c.axes
    for a in (rows, cols):
        idx, _ = a.taps(0, a.size)
        assert a.ratio == 0.9 and idx.max() - idx.min() < a.source * 0.9 - 2   # edges apart
    torus = one.paint(W * zp.scale, H * zp.scale, seed=5)
    got = zp.paint(100, 70, seed=5, tileable=False)
    assert np.abs(got - through(through(torus, rows, axis=1), cols, axis=2)).max() < 1e-5
    part = zp.paint(100, 70, seed=5, tileable=False, window=(13, 21, 40, 30), tile=1)
    assert np.abs(part - got[:, 21:51, 13:53]).max() < 1e-5


# ----------------------------------------------------------------------------- windows

@pytest.mark.parametrize("size", [(96, 64), (100, 70), (33, 17)])
def test_a_window_is_that_crop_of_the_whole_texture_psgan(onnx_painter, size):
    p = onnx_painter
    full = p.paint(*size, seed=7)
    w0, h0 = size
    for x, y, w, h in ((0, 0, w0, h0), (5, 3, 20, 11), (w0 - 7, h0 - 5, 7, 5), (31, 0, 2, h0)):
        got = p.paint(*size, seed=7, window=(x, y, w, h), tile=1)
        assert got.shape == (3, h, w)
        assert np.abs(got - full[:, y:y + h, x:x + w]).max() < 1e-5


@pytest.mark.parametrize("size", [(48, 32), (37, 29)])
def test_a_window_is_that_crop_of_the_whole_texture_texnet(texnet_painter, size):
    """texnet: 4095-style packed noise (here 2 + 8 + 32 channels per cell), margin 4."""
    p = texnet_painter
    assert p.kind == "texnet" and p.margin == 4
    full = p.paint(*size, seed=5, tile=None)
    for x, y, w, h in ((0, 0, 16, 16), (9, 13, 21, 15), (size[0] - 3, 0, 3, size[1])):
        got = p.paint(*size, seed=5, window=(x, y, w, h), tile=2)
        assert np.abs(got - full[:, y:y + h, x:x + w]).max() < 1e-5


def test_windows_of_a_morph_and_the_noise_of_other_seeds(onnx_painter):
    p = onnx_painter
    full = p.paint(128, 64, seed=1, morph_seed=2)
    np.testing.assert_allclose(p.paint(128, 64, seed=1, morph_seed=2, window=(64, 0, 64, 64)),
                               full[:, :, 64:], atol=1e-5)
    assert np.abs(full - p.paint(128, 64, seed=1)).mean() > 1e-3        # the morph shows


def test_painting_never_holds_the_canvas(onnx_painter):
    """A 2048 px texture into a sink: numpy's peak is a band of tiles, not the 48 MiB float
    canvas (onnxruntime's own buffers are not counted here; benchmarks/scale.py measures the
    whole process at 65536 px)."""
    rows = []
    sink = PixelSink(lambda y, px: rows.append(len(px)), np.uint8)
    tracemalloc.start()
    onnx_painter.paint(2048, 2048, seed=1, tile=8, sink=sink)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(rows) == 2048
    assert peak < 16 * 2 ** 20, peak / 2 ** 20


def test_cancel_leaves_no_file(onnx_painter, tmp_path):
    calls = []
    with pytest.raises(Cancelled):
        paint_to_file(onnx_painter, tmp_path / "t.png", 256, 256, tile=2,
                      cancel=lambda: calls.append(1) or len(calls) > 3)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- PNG streams

@pytest.mark.parametrize("bits,channels", [(8, 3), (16, 3), (8, 1), (16, 4), (8, 2)])
def test_streamed_png_round_trip(tmp_path, bits, channels):
    from texgen.runtime.png import PngWriter, read_png_rows, read_text
    rng = np.random.default_rng(bits + channels)
    dtype = np.uint16 if bits == 16 else np.uint8
    px = rng.integers(0, np.iinfo(dtype).max + 1, (37, 29, channels), dtype=dtype)
    px[10:20] = px[9]                                   # runs of equal rows: 'Up' gives zeros
    with PngWriter(tmp_path / "a.png", 29, 37, channels, bits, text={"k": "v"}) as png:
        for y in range(0, 37, 10):
            png.write(y, px[y:y + 10])
    back = np.concatenate([r for _, r in read_png_rows(tmp_path / "a.png", band=8)])
    np.testing.assert_array_equal(back, px)
    assert read_text(tmp_path / "a.png") == {"k": "v"}
    with Image.open(tmp_path / "a.png") as im:          # a PNG other readers read
        im.load()
        if bits == 8:
            np.testing.assert_array_equal(np.asarray(im).reshape(px.shape), px)


def test_png_writer_is_atomic_and_checks_rows(tmp_path):
    from texgen.runtime.png import PngWriter
    with pytest.raises(ValueError, match="rows"):
        with PngWriter(tmp_path / "a.png", 4, 4, 3) as png:
            png.write(0, np.zeros((2, 4, 3), np.uint8))        # 2 of 4 rows, then the end
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="in order"):
        with PngWriter(tmp_path / "a.png", 4, 4, 3) as png:
            png.write(1, np.zeros((2, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_streaming_reader_refuses_average_and_paeth_rows(tmp_path):
    from texgen.runtime.png import PngUnsupported, read_png_rows
    rng = np.random.default_rng(0)
    img = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "pil.png")     # Pillow picks filters per row
    try:
        np.testing.assert_array_equal(
            np.concatenate([r for _, r in read_png_rows(tmp_path / "pil.png")]), img)
    except PngUnsupported:
        pass                                            # Average/Paeth rows: said, not guessed


def test_eval_image_reads_pngs_in_bands(onnx_painter, tmp_path):
    """eval --image streams a PNG texgen wrote (any size: past read_image's MAX_PIXELS too),
    with the scores of reading it whole; a PNG with Average/Paeth rows is read whole."""
    from texgen.eval.report import evaluate_image, score_image_file
    from texgen.runtime import imageio
    path = paint_to_file(onnx_painter, tmp_path / "t.png", 160, 96, seed=2)
    whole = evaluate_image(read_image(path))
    found = imageio.read_image_bands(path, band=7)
    assert found is not None and found[0] == (160, 96)
    streamed, preview = score_image_file(path)
    assert streamed["seam_score"] == pytest.approx(whole["seam_score"], rel=1e-9)
    assert streamed["dominant_periods_px"] == whole["dominant_periods_px"]
    np.testing.assert_allclose(preview, read_image(path), atol=1e-6)
    res = run("eval", "--image", path)
    assert res.exit_code == 0 and json.loads(res.output)["seam_score"] == pytest.approx(
        whole["seam_score"])
    # other encoders: Pillow's adaptive filters (Paeth on noise) -> the whole-image reader
    noisy = (np.random.default_rng(0).random((96, 160, 3)) * 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "pil.png")
    assert score_image_file(tmp_path / "pil.png")[0] == evaluate_image(read_image(tmp_path / "pil.png"))
    Image.fromarray(noisy).save(tmp_path / "j.jpg")
    assert imageio.read_image_bands(tmp_path / "j.jpg") is None
    assert imageio.STREAM_MAX_SIDE == 65536


# ----------------------------------------------------------------------------- the CLI

def test_generate_window_equals_the_crop_of_the_whole(tiny_models, tmp_path):
    model = tiny_models[2]
    assert run("generate", "--model", model, "--device", "cpu", "--size", "100x70", "--seed",
               4, "--out", tmp_path / "full.png").exit_code == 0
    res = run("generate", "--model", model, "--device", "cpu", "--size", "100x70", "--seed", 4,
              "--window", "13,7,50,40", "--out", tmp_path / "win.png")
    assert res.exit_code == 0, res.output
    full = np.asarray(Image.open(tmp_path / "full.png"), np.int16)
    win = np.asarray(Image.open(tmp_path / "win.png"), np.int16)
    assert win.shape == (40, 50, 3)
    assert np.abs(win - full[7:47, 13:63]).max() <= 1        # float rounding of the convs
    one_error_line(run("generate", "--model", model, "--size", "100x70", "--window",
                       "90,0,20,20", "--out", tmp_path / "w.png"), "does not lie inside")
    one_error_line(run("generate", "--model", model, "--window", "1,2,3", "--out",
                       tmp_path / "w.png"), "X,Y,W,H")
    one_error_line(run("generate", "--model", model, "--window", "0,0,8,8", "--maps", "normal",
                       "--out", tmp_path / "w.png"), "--maps")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.png", "win.png"]


def test_generate_udim_set_joins_and_wraps(tiny_models, tmp_path):
    model = tiny_models[2]
    res = run("generate", "--model", model, "--device", "cpu", "--udim", "3x2", "--tile-size",
              40, "--seed", 6, "--bits", 16, "--out", tmp_path / "wall.png")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in tmp_path.iterdir())
    # the tiles, and the job manifest a rerun reads to skip finished tiles (texgen/cluster.py)
    assert names == [f"wall.{n}.png" for n in (1001, 1002, 1003, 1011, 1012, 1013)] + ["wall.jobs.json"]
    assert "wall.1001.png .. wall.1013.png" in res.output
    tiles = {n: read_image(tmp_path / f"wall.{n}.png") for n in (1001, 1002, 1003, 1011, 1012, 1013)}
    # 1001 is the bottom left: image rows count down, UDIM rows up
    top = np.concatenate([tiles[1011], tiles[1012], tiles[1013]], axis=1)
    bottom = np.concatenate([tiles[1001], tiles[1002], tiles[1003]], axis=1)
    whole = np.concatenate([top, bottom], axis=0)
    p = OnnxPainter(model, device="cpu", threads=1)
    ref = to_pixels(p.paint(120, 80, seed=6), np.float32)
    assert np.abs(whole - ref).max() <= 1.5 / 65535           # one painting, 16-bit rounding
    assert seam_ratio(whole.transpose(2, 0, 1), axis=2) < 1.5 and seam_ratio(
        whole.transpose(2, 0, 1), axis=1) < 1.5               # the set wraps as a whole
    # a rerun keeps what is painted (the tiles record their settings) and redoes the rest
    (tmp_path / "wall.1012.png").unlink()
    before = (tmp_path / "wall.1001.png").stat().st_mtime_ns
    res = run("generate", "--model", model, "--device", "cpu", "--udim", "3x2", "--tile-size",
              40, "--seed", 6, "--bits", 16, "--out", tmp_path / "wall.png")
    assert res.exit_code == 0 and "wrote 1 UDIM tiles" in res.output and "5 already" in res.output
    assert (tmp_path / "wall.1001.png").stat().st_mtime_ns == before
    np.testing.assert_array_equal(read_image(tmp_path / "wall.1012.png"), tiles[1012])
    # another seed repaints them all
    res = run("generate", "--model", model, "--device", "cpu", "--udim", "3x2", "--tile-size",
              40, "--seed", 7, "--out", tmp_path / "wall.png")
    assert res.exit_code == 0 and "wrote 6 UDIM tiles" in res.output


def test_udim_numbers_and_refusals(tiny_models, tmp_path):
    from texgen.runtime.udim import parse_udim, tile_path, udim_tiles
    tiles = udim_tiles(10, 2, 16)
    assert [t.number for t in tiles][:3] == [1001, 1002, 1003] and tiles[-1].number == 1020
    assert tiles[0].window == (0, 16, 16, 16) and tiles[-1].window == (144, 0, 16, 16)
    assert tile_path(Path("a/wall.png"), 1011) == Path("a/wall.1011.png")
    assert tile_path(Path("wall.<UDIM>.tif"), 1002) == Path("wall.1002.tif")
    assert parse_udim(" 4 x 3 ") == (4, 3)
    model = tiny_models[2]
    for args, match in ((["--udim", "11x1", "--tile-size", 32], "10 columns"),
                        (["--udim", "2x2"], "--tile-size"),
                        (["--tile-size", 32], "--udim"),
                        (["--udim", "2x2", "--tile-size", 32, "--size", 64], "leave out"),
                        (["--udim", "2", "--tile-size", 32], "COLSxROWS"),
                        (["--udim", "4x4", "--tile-size", 20000], "65536")):
        one_error_line(run("generate", "--model", model, *args, "--out", tmp_path / "u.png"), match)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- painters, kinds

def test_both_painters_are_painters(onnx_painter, texnet_painter, tiny_models):
    from texgen.painters import Painter, open_painter
    assert isinstance(onnx_painter, Painter) and isinstance(texnet_painter, Painter)
    torch_p = open_painter(str(tiny_models[1]))
    assert isinstance(torch_p, Painter) and torch_p.kind == onnx_painter.kind == "psgan"
    assert np.abs(torch_p.paint(64, 48, seed=2) - onnx_painter.paint(64, 48, seed=2)).max() < 1e-4


def test_files_made_before_kind_get_it_from_their_config(tmp_path):
    """One fallback for model files without a kind: what their config implies."""
    from texgen.kinds import kind_of
    from texgen.paint import TorchPainter
    from conftest import tiny_config
    from texgen.models.psgan import Generator
    assert kind_of({"n_global": 0, "n_periodic": 0}) == "sgan"
    assert kind_of({"n_global": 3, "n_periodic": 0}) == "psgan"
    assert kind_of({"levels": 3, "content": 3}) == "stylize"
    assert kind_of({"content": 0}, model="texnet") == "texnet"
    cfg = tiny_config(n_global=0, n_periodic=0)
    old = {k: v for k, v in cfg.to_dict().items() if k != "kind"}      # a 0.1 checkpoint
    checkpoint.save_model(tmp_path, Generator(cfg).eval(), {"config": old})
    assert TorchPainter(tmp_path).kind == "sgan"
    with pytest.raises(TexgenError, match="kind"):
        tiny_config(kind="texnet")


def test_export_installs_as_texgen_export_only(tmp_path):
    """export/ is the package texgen.export: a wheel holds no top-level `export`."""
    import texgen.export.onnx_export as m
    assert Path(m.__file__).parent == ROOT / "export"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("texgen", "export"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns(
            "__pycache__", "*.safetensors", "*.onnx", "*.png"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True,
                   capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("texgen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "texgen/export/onnx_export.py" in names
    assert not [n for n in names if n.startswith("export/")]
