"""ONNX export and the torch-free onnxruntime painter: same pixels as torch, seamless, safe to load."""

import base64
import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import seam_ratio, stripes, tiny_config
from texgen.export.onnx_export import export_onnx, fold_batchnorm
from texgen import checkpoint
from texgen.cli import main as cli
from texgen.errors import TexgenError
from texgen.train.batchnorm import calibrate_batchnorm
from texgen.models.psgan import Generator
from texgen.paint import load_generator, torch_runner
from texgen.runtime.noise import sample_noise
from texgen.runtime.onnx_painter import METADATA, OnnxPainter
from texgen.runtime.tiling import tile_noise

FP32_TOL = 1e-4
# measured 3.8e-4 (max abs, [-1, 1] range) on these tiny random models, onnxruntime CPU 1.31
FP16_TOL = 1e-3


@pytest.fixture(scope="module")
def exported(tiny_G, tmp_path_factory):
    """(folder, fp32 .onnx, fp16 .onnx) for the tiny generator, with an exemplar thumbnail."""
    d = tmp_path_factory.mktemp("onnx")
    folder = d / "model"
    checkpoint.save_model(folder, tiny_G, {"config": tiny_G.cfg.to_dict(),
                                           "provenance": {"method": "psgan", "licence": "CC0"}})
    Image.fromarray((stripes(150, 200) * 255).astype(np.uint8)).save(folder / "exemplar.png")
    export_onnx(folder, d / "m.onnx")
    export_onnx(folder, d / "m16.onnx", fp16=True)
    return folder, d / "m.onnx", d / "m16.onnx"


def torch_image(G, h, w, seed=1):
    """The inputs of a whole h x w torus as one tile (with its wrapped context) and what the
    torch painter paints from them."""
    z, ys, xs = tile_noise(sample_noise(G.cfg.layout, h, w, seed=seed), 0, 0, h, w, G.margin)
    torus = np.array([h, w], np.float32)
    return z, ys, xs, torus, torch_runner(G)(z, ys, xs, torus)


# ----------------------------------------------------------------------------- export

def test_fold_batchnorm_is_exact_and_leaves_the_original_alone(tiny_G):
    before = {k: v.clone() for k, v in tiny_G.state_dict().items()}
    folded = fold_batchnorm(tiny_G)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in tiny_G.modules())
    # the running statistics are not trivial, so folding had something to do
    bn = next(m for m in tiny_G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert (bn.running_var - 1).abs().max() > 1e-3
    z, ys, xs, torus, _ = torch_image(tiny_G, 3, 5)
    args = (torch.from_numpy(z), (torch.from_numpy(ys), torch.from_numpy(xs)), torch.from_numpy(torus))
    with torch.no_grad():
        assert (folded(*args) - tiny_G(*args)).abs().max().item() <= 1e-5
    for k, v in tiny_G.state_dict().items():
        assert torch.equal(v, before[k])


def test_exported_graph_and_metadata(exported, tiny_G):
    _, path, path16 = exported
    m = onnx.load(str(path))
    assert m.ir_version == 8
    ops = {n.op_type for n in m.graph.node}
    # batch norm folded; transposed convs run as phase convs (layers.forward_valid) whose
    # weights and biases are folded into constants: no work on weights at run time
    assert "BatchNormalization" not in ops and "ConvTranspose" not in ops
    assert not ops & {"Tile", "Transpose", "Expand"}
    assert [i.name for i in m.graph.input] == ["z", "ys", "xs", "torus"]
    assert [o.name for o in m.graph.output] == ["image"]
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta.keys() == METADATA.keys()
    assert meta["texgen_format"] == "3" and meta["kind"] == "psgan" and meta["precision"] == "fp32"
    assert meta["noise_version"] == "2"
    assert json.loads(meta["noise_layout"]) == {"n_global": 4, "n_local": 4, "n_periodic": 2}
    assert int(meta["scale"]) == tiny_G.cfg.scale and int(meta["margin"]) == tiny_G.margin
    assert json.loads(meta["channels"]) == ["color"]
    assert json.loads(meta["colour_space"]) == {"color": "sRGB"}
    assert json.loads(meta["provenance"])["licence"] == "CC0"
    thumb = Image.open(io.BytesIO(base64.b64decode(meta["exemplar_png_base64"])))
    assert max(thumb.size) <= 128 and thumb.size == (128, 96)
    p16 = OnnxPainter(path16, device="cpu")
    assert p16.precision == "fp16"
    m16 = onnx.load(str(path16))
    assert {v.type.tensor_type.elem_type for v in [*m16.graph.input, *m16.graph.output]} \
        == {onnx.TensorProto.FLOAT}                             # io stays float32
    inits = {t.name: t.data_type for t in m16.graph.initializer}
    conv_w = [n.input[1] for n in m16.graph.node
              if n.op_type == "Conv" and not n.name.startswith("/waves/")]    # the trunk
    assert len(conv_w) == len(tiny_G.cfg.g_widths) + 1
    assert all(inits[w] == onnx.TensorProto.FLOAT16 for w in conv_w)


# ----------------------------------------------------------------------------- parity

def test_onnx_matches_torch_fp32_on_a_non_power_of_two_canvas(exported, tiny_G):
    p = OnnxPainter(exported[1], device="cpu")
    z, ys, xs, torus, ref = torch_image(tiny_G, 3, 5)
    out = p.run(z, ys, xs, torus)
    assert out.dtype == np.float32 and out.shape == ref.shape == (1, 3, 96, 160)
    assert np.abs(out - ref).max() <= FP32_TOL
    # a torus that forces the wave numbers to round differently still agrees
    z, ys, xs, torus, ref = torch_image(tiny_G, 5, 7, seed=2)
    assert np.abs(p.run(z, ys, xs, torus) - ref).max() <= FP32_TOL


def test_onnx_fp16_within_bound(exported, tiny_G):
    p = OnnxPainter(exported[2], device="cpu")
    z, ys, xs, torus, ref = torch_image(tiny_G, 3, 5)
    out = p.run(z, ys, xs, torus)
    assert out.dtype == np.float32
    err = np.abs(out - ref).max()
    assert 0 < err <= FP16_TOL


def test_fp16_keeps_every_layer_s_waves_in_float32(layered_G, tmp_path):
    # a tile 1000 cells into a big canvas: in float16 (11 bits) its pixels' positions would
    # be off by up to a quarter cell, an eighth of this model's shortest wave; in float32
    # they are exact, so the waves must stay float32 while the trunk runs in float16
    checkpoint.save_model(tmp_path, layered_G, {"config": layered_G.cfg.to_dict(),
                                                "provenance": {"method": "psgan"}})
    export_onnx(tmp_path, tmp_path / "h.onnx", fp16=True)
    p = OnnxPainter(tmp_path / "h.onnx", device="cpu")
    z = sample_noise(layered_G.cfg.layout, 1200, 4, seed=3)
    z, ys, xs = tile_noise(z, 1000, 0, 4, 4, layered_G.margin)
    assert ys.min() >= 999
    torus = np.array([1200, 4], np.float32)
    ref = torch_runner(layered_G)(z, ys, xs, torus)
    assert 0 < np.abs(p.run(z, ys, xs, torus) - ref).max() <= FP16_TOL


def test_sgan_exports_and_matches(tmp_path):
    torch.manual_seed(1)
    cfg = tiny_config(n_global=0, n_periodic=0)
    G = Generator(cfg)
    calibrate_batchnorm(G, cells=3, batches=2, batch=2)
    checkpoint.save_model(tmp_path, G.eval(), {"config": cfg.to_dict(), "provenance": {"method": "sgan"}})
    export_onnx(tmp_path, tmp_path / "s.onnx")
    p = OnnxPainter(tmp_path / "s.onnx", device="cpu")
    assert p.kind == "sgan"
    z, ys, xs, torus, ref = torch_image(G, 3, 5)
    assert np.abs(p.run(z, ys, xs, torus) - ref).max() <= FP32_TOL


def test_pixel_noise_exports_and_matches(noisy_G, tmp_path):
    # the noise is added after batch norm, which export folds into the convolution before it
    checkpoint.save_model(tmp_path, noisy_G, {"config": noisy_G.cfg.to_dict(),
                                              "provenance": {"method": "psgan"}})
    export_onnx(tmp_path, tmp_path / "n.onnx")
    p = OnnxPainter(tmp_path / "n.onnx", device="cpu")
    assert p.layout == noisy_G.cfg.layout and p.layout.n_local == 4 + 4 + 16 + 64 + 256
    z, ys, xs, torus, ref = torch_image(noisy_G, 3, 5)
    assert np.abs(p.run(z, ys, xs, torus) - ref).max() <= FP32_TOL
    # its strengths are all 0.5: the exporter shares equal parameters through Identity
    # nodes at the head of the graph, which the fp16 trunk must read through
    export_onnx(tmp_path, tmp_path / "n16.onnx", fp16=True)
    assert 0 < np.abs(OnnxPainter(tmp_path / "n16.onnx", device="cpu").run(z, ys, xs, torus)
                      - ref).max() <= FP16_TOL


def test_derived_kernel_exports_the_plain_graph(chroma_G, tiny_G, tmp_path):
    # half_chroma's kernel is stored as constants: the same operators as a plain generator's
    ops = {}
    for name, G in (("plain", tiny_G), ("derived", chroma_G)):
        checkpoint.save_model(tmp_path / name, G, {"config": G.cfg.to_dict(),
                                                   "provenance": {"method": "psgan"}})
        export_onnx(tmp_path / name, tmp_path / f"{name}.onnx")
        ops[name] = sorted(n.op_type for n in onnx.load(tmp_path / f"{name}.onnx").graph.node
                           if n.op_type != "Constant")
    # (that they paint what torch does: test_wave_options_reload_export_and_match)
    assert ops["derived"] == ops["plain"]


@pytest.mark.parametrize("fields", [
    # the directions are not saved: they follow from init_k in the saved config
    {"init_k": [[1.1, 0.0], [0.5, 2.3]], "wave_along": True},
    # nor which waves are held and snapped: that follows from init_k and wave_grid
    {"init_k": [[3.1416, 0.0], [0.0, 1.1]], "wave_grid": 4},
    # nor a derived kernel: only the weights it derives from (half_chroma)
    {"half_chroma": True},
    # the waves at every layer come from the same numbers and phases, made in the graph
    {"init_k": [[1.1, 0.0], [0.5, 2.3]], "wave_layers": True},
    # one set of wave numbers, a parameter where the MLP was
    {"init_k": [[1.1, 0.0], [0.5, 2.3]], "wave_along": True, "wave_shared": True},
], ids=["along", "grid", "half_chroma", "layers", "shared"])
def test_wave_options_reload_export_and_match(tmp_path, fields):
    torch.manual_seed(2)
    cfg = tiny_config(**fields)
    G = Generator(cfg)
    with torch.no_grad():                        # wave numbers that differ from the start
        (G.waves.k if cfg.wave_shared else G.waves.mlp[2].bias).mul_(1.2)
    if cfg.wave_grid:   # the first wave is snapped, the second is not; both held (so the MLP's
        # bias above changes nothing: the start must come back from init_k and wave_grid)
        assert G.waves.phase_step is not None and G.waves.k_start is not None
    calibrate_batchnorm(G, cells=3, batches=2, batch=2)
    checkpoint.save_model(tmp_path, G.eval(), {"config": cfg.to_dict(), "provenance": {"method": "psgan"}})
    loaded, _ = load_generator(tmp_path)
    z, ys, xs, torus, ref = torch_image(G, 3, 5)
    assert np.abs(torch_image(loaded, 3, 5)[-1] - ref).max() == 0
    export_onnx(tmp_path, tmp_path / "w.onnx")
    p = OnnxPainter(tmp_path / "w.onnx", device="cpu")
    assert np.abs(p.run(z, ys, xs, torus) - ref).max() <= FP32_TOL


# ----------------------------------------------------------------------------- painting

def test_onnx_tiles_equal_one_shot_and_wrap(exported):
    p = OnnxPainter(exported[1], device="cpu", threads=1)
    W, H = 6 * p.scale, 5 * p.scale
    whole = p.paint(W, H, seed=4, tile=None)
    calls = []
    tiled = p.paint(W, H, seed=4, tile=2, progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == list(range(1, 10)) and {t for _, t in calls} == {9}
    assert whole.shape == (3, H, W) and whole.std() > 1e-3
    assert np.abs(whole - tiled).max() <= 1e-5
    assert seam_ratio(whole, axis=2) <= 1.5
    assert seam_ratio(whole, axis=1) <= 1.5


def test_runtime_works_with_torch_hidden(exported, tmp_path):
    path = exported[1]
    expected = OnnxPainter(path, device="cpu").paint(96, 64, seed=7)
    np.save(tmp_path / "expected.npy", expected)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None          # any import of torch now raises ImportError
        import numpy as np
        from texgen.runtime.onnx_painter import OnnxPainter
        img = OnnxPainter({str(path)!r}, device="cpu").paint(96, 64, seed=7)
        assert np.array_equal(img, np.load({str(tmp_path / "expected.npy")!r}))
        # and so does the command line, which opens models through texgen.painters
        from texgen.cli import main
        main(["generate", "--model", {str(path)!r}, "--size", "64", "--device", "cpu",
              "--out", {str(tmp_path / "cli.png")!r}], standalone_mode=False)
        assert sys.modules["torch"] is None, "torch was imported"
        assert not [m for m in sys.modules if m.startswith("torch.")], "torch was imported"
        print("ok", img.shape)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ok (3, 64, 96)" in r.stdout


# ----------------------------------------------------------------------------- bad files

def _one_line_error(path, match):
    with pytest.raises(TexgenError, match=match) as e:
        OnnxPainter(path, device="cpu")
    assert "\n" not in str(e.value)


def test_tampered_truncated_and_foreign_files_are_refused(exported, tmp_path):
    data = exported[1].read_bytes()
    flipped = bytearray(data)
    mid = len(data) // 2
    flipped[mid:mid + 8] = bytes(b ^ 0xFF for b in flipped[mid:mid + 8])
    (tmp_path / "flipped.onnx").write_bytes(bytes(flipped))
    _one_line_error(tmp_path / "flipped.onnx", "modified or damaged")
    for n, cut in enumerate((len(data) // 2, len(data) - 10, 100)):
        (tmp_path / f"cut{n}.onnx").write_bytes(data[:cut])
        _one_line_error(tmp_path / f"cut{n}.onnx", "damaged|corrupt or truncated|not a texgen")
    (tmp_path / "junk.onnx").write_bytes(b"not an onnx file at all" * 10)
    _one_line_error(tmp_path / "junk.onnx", "not a readable ONNX model|not a texgen")

    h = onnx.helper
    graph = h.make_graph([h.make_node("Identity", ["x"], ["y"])], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    _one_line_error(tmp_path / "foreign.onnx", "is not a texgen ONNX model")
    _one_line_error(tmp_path / "missing.onnx", "no model found")


# ----------------------------------------------------------------------------- CLI

def test_cli_export_then_generate_matches_torch(exported, tmp_path):
    folder = exported[0]
    runner = CliRunner()
    onnx_path = tmp_path / "m.onnx"
    r = runner.invoke(cli, ["export", str(folder), "--out", str(onnx_path)])
    assert r.exit_code == 0, r.output
    assert OnnxPainter(onnx_path, device="cpu").precision == "fp32"
    for model, png, extra in ((onnx_path, "x.png", ["--device", "cpu", "--threads", "1"]),
                              (folder, "t.png", [])):
        r = runner.invoke(cli, ["generate", "--model", str(model), "--size", "96x64", "--seed", "5",
                                "--out", str(tmp_path / png), *extra])
        assert r.exit_code == 0, r.output
    a = np.asarray(Image.open(tmp_path / "x.png"), np.int16)
    b = np.asarray(Image.open(tmp_path / "t.png"), np.int16)
    assert a.shape == b.shape == (64, 96, 3)
    assert np.abs(a - b).max() <= 1
    assert a.std() > 0


def test_cli_generate_bad_onnx_is_one_line(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"\x00" * 64)
    r = CliRunner().invoke(cli, ["generate", "--model", str(tmp_path / "bad.onnx"),
                                 "--size", "64", "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and r.output.startswith("error: ")


def test_paint_into_preallocated_pixels(exported):
    from texgen.runtime.canvas import PixelSink
    from texgen.runtime.tiling import to_pixels
    p = OnnxPainter(exported[1], device="cpu", threads=1)
    W, H = 6 * p.scale, 5 * p.scale
    ref = p.paint(W, H, seed=4)
    for dtype, tile in ((np.uint8, 2), (np.uint16, 2), (np.float32, None)):
        out = np.zeros((H, W, p.channels), dtype)
        assert p.paint(W, H, seed=4, tile=tile, sink=PixelSink.into(out)) is None
        assert np.array_equal(out, to_pixels(ref, dtype))
    # a size that is not whole cells is resampled band by band, then converted into out
    out = np.zeros((70, 100, p.channels), np.uint8)
    p.paint(100, 70, seed=4, tile=2, sink=PixelSink.into(out))
    assert np.array_equal(out, to_pixels(p.paint(100, 70, seed=4), np.uint8))


def test_builtin_onnx_is_current_with_its_weights():
    """The shipped model.onnx (what the Blender add-on paints) must paint what the shipped
    weights paint: re-export it after changing the graph or its contract."""
    from texgen.builtin import builtin_path
    from texgen.paint import TorchPainter
    folder = builtin_path("bricks")
    p = OnnxPainter(folder / "model.onnx", device="cpu")
    t = TorchPainter(folder)
    assert p.maps == t.maps and p.margin == t.margin and p.scale == t.scale
    a, b = p.paint(96, 64, seed=3), t.paint(96, 64, seed=3)
    assert np.abs(a - b).max() <= FP32_TOL


def test_a_window_paints_the_pixels_of_that_crop():
    """paint(window=(x, y, w, h)) paints one region of the same texture (the seed browser's
    previews, generate --window, UDIM tiles): the pixels of that crop of the whole texture,
    wherever it lies and whatever its size, cells or not, wrapping included."""
    from texgen.builtin import builtin_onnx
    p = OnnxPainter(builtin_onnx("bricks"), device="cpu", threads=1)
    for size in ((256, 192), (250, 173)):           # whole cells, and resampled
        full = p.paint(*size, seed=3)
        for x, y, w, h in ((0, 0, 64, 64), (160, 128, 96, 64), (0, 32, 256, 160),
                           (17, 5, 33, 70), (size[0] - 1, size[1] - 1, 1, 1)):
            w, h = min(w, size[0] - x), min(h, size[1] - y)
            got = p.paint(*size, seed=3, window=(x, y, w, h), tile=1)
            assert got.shape == (full.shape[0], h, w)
            assert np.abs(got - full[:, y:y + h, x:x + w]).max() < 1e-5
    for bad in ((0, 0, 0, 64), (-1, 0, 64, 64), (200, 0, 64, 64), (0, 150, 64, 64)):
        with pytest.raises(TexgenError, match="does not lie inside"):
            p.paint(250, 192, seed=3, window=bad)
