"""Material maps: derived maps wrap exactly, follow the conventions, and learned stacks train,
export and come back as unit normals. Small synthetic images; one tiny training run."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_config
from texgen.cli import main as cli
from texgen.data import SINGLE_CHANNEL_MAPS as DATA_SINGLE, check_aligned, load_stack, parse_map_paths
from texgen.errors import TexgenError
from texgen.eval.metrics import seam_score
from texgen.runtime import maps as M
from texgen.runtime.imageio import save_image
from texgen.runtime.maps import (MAP_NAMES, MapParams, ao_from_height, height_from_color,
                                 map_file_name, material_maps, normal_from_height,
                                 roughness_from_color)
from texgen.train import psgan as train_psgan
from texgen.train.psgan import TrainConfig

DERIVED = {"height": height_from_color, "roughness": roughness_from_color,
           "normal": lambda c, p=None: normal_from_height(height_from_color(c, p), p),
           "ao": lambda c, p=None: ao_from_height(height_from_color(c, p), p)}


def waves(h=96, w=128, whole_periods=True, seed=0) -> np.ndarray:
    """(h, w, 3) colour in [0.1, 0.9]: plane waves. With whole numbers of periods across the
    image it tiles exactly (by construction, not by any code under test); with half periods
    its edges do not meet."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w, 3))
    for _ in range(8):
        ky, kx = rng.integers(1, 9, 2) + (0 if whole_periods else 0.5)
        wave = np.sin(2 * np.pi * (ky * y / h + kx * x / w) + rng.uniform(0, 2 * np.pi))
        out += rng.uniform(0.3, 1.0, 3) * wave[..., None]
    out = (out - out.min()) / (out.max() - out.min())
    return (0.1 + 0.8 * out).astype(np.float32)


def bump(h=64, w=64, bright=True) -> np.ndarray:
    """A grey colour: a Gaussian disc (bright or dark) on a mid-grey ground, centred."""
    y, x = np.mgrid[0:h, 0:w]
    g = np.exp(-((y - h / 2) ** 2 + (x - w / 2) ** 2) / (2 * 6.0 ** 2))
    v = 0.5 + (0.4 if bright else -0.4) * g
    return np.repeat(v[..., None], 3, axis=2).astype(np.float32)


def as_output(color: np.ndarray) -> np.ndarray:
    """A colour (H, W, 3) in [0, 1] as a painter's output (3, H, W) in [-1, 1]."""
    return color.transpose(2, 0, 1) * 2 - 1


def decode(normal: np.ndarray) -> np.ndarray:
    return normal.astype(np.float64) * 2 - 1


# ----------------------------------------------------------------------------- seamless

@pytest.mark.parametrize("name", sorted(DERIVED))
def test_derived_maps_wrap_exactly(name):
    """The map of a shifted colour is the shifted map: no filter sees an edge."""
    c = waves(whole_periods=False)          # not seamless itself: shifting moves its seam
    shift = (17, -41)
    a = np.roll(DERIVED[name](c), shift, axis=(0, 1))
    b = DERIVED[name](np.roll(c, shift, axis=(0, 1)))
    assert a.shape[:2] == c.shape[:2] and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-4


def test_derived_maps_are_as_seamless_as_their_colour():
    c = waves()
    got = material_maps(as_output(c), ["color"], MAP_NAMES)
    assert seam_score(got["color"]) < 1.3
    for name in ("normal", "height", "roughness", "ao"):
        assert seam_score(got[name]) < 1.3, name
    # and the score would show a seam: the same maps of a colour whose edges do not meet
    broken = material_maps(as_output(waves(whole_periods=False)), ["color"], MAP_NAMES)
    assert seam_score(broken["color"]) > 3
    for name in ("height", "roughness", "ao"):
        assert seam_score(broken[name]) > 1.3, name


# ----------------------------------------------------------------------------- conventions

def test_normals_are_unit_and_dx_is_gl_with_green_flipped():
    c = waves()
    gl = normal_from_height(height_from_color(c), MapParams(normal_convention="gl"))
    dx = normal_from_height(height_from_color(c), MapParams(normal_convention="dx"))
    for n in (gl, dx):
        assert n.shape == c.shape and 0 <= n.min() and n.max() <= 1
        assert np.allclose(np.linalg.norm(decode(n), axis=2), 1, atol=1e-5)
    assert np.allclose(dx[..., 1], 1 - gl[..., 1], atol=1e-6)
    assert np.array_equal(dx[..., [0, 2]], gl[..., [0, 2]])
    assert decode(gl)[..., 2].min() > 0              # never facing into the surface


def test_height_normal_and_ao_of_a_known_bump():
    h = height_from_color(bump(bright=True))
    centre, ground = h[32, 32], h[4, 4]
    assert centre > ground + 0.5                       # bright disc -> raised
    inverted = height_from_color(bump(bright=True), MapParams(height_invert=True))
    assert inverted[32, 32] < inverted[4, 4] - 0.5
    n = decode(normal_from_height(h))                  # OpenGL: x right, y up the image
    assert n[32, 40, 0] > 0.1 and n[32, 24, 0] < -0.1  # right flank faces right, left faces left
    assert n[24, 32, 1] > 0.1 and n[40, 32, 1] < -0.1  # upper flank (smaller row) faces up
    assert abs(n[32, 32, 0]) < 0.02 and abs(n[32, 32, 1]) < 0.02   # the top is flat
    strong = decode(normal_from_height(h, MapParams(normal_strength=16)))
    assert strong[32, 40, 0] > n[32, 40, 0]            # strength steepens
    pit = height_from_color(bump(bright=False))
    ao = ao_from_height(pit)
    assert ao[32, 32] < ao[4, 4] - 0.1                 # the pit is occluded, open ground is not
    assert np.array_equal(ao_from_height(np.full((16, 16), 0.5, np.float32)), np.ones((16, 16)))


def test_roughness_dark_is_rough_unless_inverted():
    c = bump(bright=False)
    r = roughness_from_color(c)
    assert r[32, 32] > r[4, 4] + 0.1
    assert abs(float(np.median(r)) - MapParams().roughness_base) < 0.1
    ri = roughness_from_color(c, MapParams(roughness_invert=True))
    assert ri[32, 32] < ri[4, 4] - 0.1
    assert 0 <= r.min() and r.max() <= 1


def test_naming_conventions_give_the_exact_file_names():
    expect = {
        "polyhaven": ["bricks_0007_diff.png", "bricks_0007_nor_gl.png", "bricks_0007_disp.png",
                      "bricks_0007_rough.png", "bricks_0007_ao.png"],
        "ambientcg": ["bricks_0007_Color.png", "bricks_0007_NormalGL.png",
                      "bricks_0007_Displacement.png", "bricks_0007_Roughness.png",
                      "bricks_0007_AmbientOcclusion.png"],
    }
    for naming, names in expect.items():
        assert [map_file_name("bricks_0007", m, naming) for m in MAP_NAMES] == names
    assert map_file_name("x", "normal", "polyhaven", "dx", ".exr") == "x_nor_dx.exr"
    assert map_file_name("x", "normal", "ambientcg", "dx") == "x_NormalDX.png"
    with pytest.raises(TexgenError, match="unknown naming"):
        map_file_name("x", "color", "substance")


# ----------------------------------------------------------------------------- the stack

def test_material_maps_takes_learned_maps_and_derives_the_rest():
    rng = np.random.default_rng(0)
    c = waves(32, 48)
    normal = rng.uniform(-0.3, 0.3, (3, 32, 48)).astype(np.float32)     # a GAN's: not unit
    normal[2] = np.abs(normal[2]) + 0.1
    rough = rng.uniform(-1, 1, (1, 32, 48)).astype(np.float32)
    image = np.concatenate([as_output(c), normal, rough])
    got = material_maps(image, ["color", "normal", "roughness"], MAP_NAMES)
    assert set(got) == set(MAP_NAMES)
    assert np.allclose(got["color"], c, atol=1e-6)
    assert np.allclose(got["roughness"], rough[0] * 0.5 + 0.5, atol=1e-6)   # learned, as is
    n = decode(got["normal"])
    assert np.allclose(np.linalg.norm(n, axis=2), 1, atol=1e-5)
    unit = normal / np.linalg.norm(normal, axis=0)
    assert np.allclose(n, unit.transpose(1, 2, 0), atol=1e-5)      # learned direction kept
    dx = material_maps(image, ["color", "normal", "roughness"], ["normal"],
                       MapParams(normal_convention="dx"))["normal"]
    assert np.allclose(dx[..., 1], 1 - got["normal"][..., 1], atol=1e-6)
    assert np.allclose(got["height"], height_from_color(c), atol=1e-6)   # derived from colour
    for name in ("height", "roughness", "ao"):
        assert got[name].shape == (32, 48) and got[name].dtype == np.float32


def test_map_name_errors_are_one_line_and_list_the_valid_names():
    img = as_output(waves(16, 16))
    with pytest.raises(TexgenError, match="unknown map 'nromal': valid maps are color, normal, "
                                          "height, roughness, ao") as e:
        material_maps(img, ["color"], ["nromal"])
    assert "\n" not in str(e.value)
    with pytest.raises(TexgenError, match="cannot make a color map .* it can give normal, height, ao"):
        material_maps(img[:1], ["height"], ["color"])
    with pytest.raises(TexgenError, match="does not hold the maps color, roughness"):
        material_maps(img, ["color", "roughness"], ["color"])
    with pytest.raises(TexgenError, match="unknown map 'metal'"):
        material_maps(img, ["metal"], ["color"])
    with pytest.raises(TexgenError, match="gl or dx"):
        MapParams(normal_convention="up")
    with pytest.raises(TexgenError, match="same length"):
        MapParams(height_scales=(1, 2), height_weights=(1,))


def test_one_table_of_single_channel_maps():
    assert DATA_SINGLE is M.SINGLE_CHANNEL_MAPS
    assert M.SINGLE_CHANNEL_MAPS < set(MAP_NAMES)


# ----------------------------------------------------------------------------- training data

def _write_stack(folder, shift=(0, 0)):
    c = waves(64, 64)
    maps = material_maps(as_output(c), ["color"], ["normal", "roughness"])
    paths = {"color": folder / "c.png", "normal": folder / "n.png", "roughness": folder / "r.png"}
    save_image(paths["color"], c)
    save_image(paths["normal"], np.roll(maps["normal"], shift, axis=(0, 1)))
    save_image(paths["roughness"], maps["roughness"])
    return paths


def test_stack_alignment_and_name_checks(tmp_path):
    paths = _write_stack(tmp_path)
    assert load_stack(paths).shape == (64, 64, 7)
    (tmp_path / "shifted").mkdir()
    shifted = _write_stack(tmp_path / "shifted", (5, 9))
    with pytest.raises(TexgenError, match=r"not aligned: n.png looks shifted by about x=\d+, y=\d+"):
        load_stack(shifted)
    with pytest.raises(TexgenError, match="unknown map 'gloss'"):
        load_stack({"color": paths["color"], "gloss": paths["roughness"]})
    rng = np.random.default_rng(1)                     # unrelated noise: no verdict, no error
    check_aligned(rng.random((64, 64, 3)), rng.random((64, 64, 1)))
    assert parse_map_paths("color=a.png, Normal=b.png") == {"color": "a.png", "normal": "b.png"}
    for bad, msg in (("normal", "not NAME=PATH"), ("normal=a.png,normal=b.png", "twice"),
                     ("bump=a.png", "unknown map 'bump'")):
        with pytest.raises(TexgenError, match=msg):
            parse_map_paths(bad)


TINY_PRESET = (tiny_config(), TrainConfig(iters=2, batch=2, patch=32, ckpt_every=2,
                                          preview_every=2))


def test_train_on_a_stack_exports_maps_metadata_and_paints_unit_normals(tmp_path, monkeypatch):
    from texgen.runtime.onnx_painter import OnnxPainter
    monkeypatch.setitem(train_psgan.PRESETS, "fast", TINY_PRESET)
    paths = _write_stack(tmp_path)
    out = tmp_path / "model"
    run = CliRunner().invoke(cli, ["train", str(paths["color"]), "--maps",
                                   f"normal={paths['normal']},roughness={paths['roughness']}",
                                   "--out", str(out)])
    assert run.exit_code == 0, run.output
    run = CliRunner().invoke(cli, ["export", str(out), "--out", str(tmp_path / "m.onnx")])
    assert run.exit_code == 0, run.output
    p = OnnxPainter(tmp_path / "m.onnx", device="cpu", threads=1)
    assert p.maps == ["color", "normal", "roughness"] and p.channels == 7
    assert json.loads(p.metadata["colour_space"]) == {"color": "sRGB", "normal": "linear",
                                                      "roughness": "linear"}
    got = material_maps(p.paint(64, 64, seed=1), p.maps, MAP_NAMES)
    assert np.allclose(np.linalg.norm(decode(got["normal"]), axis=2), 1, atol=1e-5)
    # a stack whose maps disagree in size is refused before training, in one line
    save_image(tmp_path / "small.png", waves(32, 32))
    run = CliRunner().invoke(cli, ["train", str(paths["color"]), "--maps",
                                   f"normal={tmp_path / 'small.png'}", "--out", str(tmp_path / "x")])
    assert run.exit_code == 1 and run.output.count("\n") == 1
    assert "not aligned: small.png is 32x32 but c.png is 64x64" in run.output
