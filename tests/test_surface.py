"""A model's real-world size and map defaults (runtime/surface.py): estimated from the
exemplar at training, recorded in the checkpoint and the ONNX file, used by every front-end."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import tiny_config
from texgen import checkpoint
from texgen.builtin import builtin_onnx, builtin_path
from texgen.builtin.procedural import BRICKS_TEXEL_SIZE, bricks
from texgen.cli import main
from texgen.errors import TexgenError
from texgen.runtime.imageio import save_image
from texgen.runtime.maps import MapParams, material_maps
from texgen.runtime.onnx_painter import OnnxPainter
from texgen.runtime.surface import (Surface, estimate_map_defaults, find_joints, parse_length,
                                    texel_size_from, tone_classes)
from texgen.train import psgan as train_psgan
from texgen.train.psgan import TrainConfig

INVERTED = {"height_invert": True, "roughness_invert": True}


def tiles(face, joint, size=256, cell=32, width=3, seed=0) -> np.ndarray:
    """Square tiles of colour `face` (with some grain) between joints of colour `joint`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    lines = ((y % cell) < width) | ((x % cell) < width)
    img = np.where(lines[..., None], joint, face).astype(np.float32)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def test_light_joints_around_darker_faces_are_recessed():
    assert estimate_map_defaults(tiles(face=(0.45, 0.2, 0.15), joint=(0.8, 0.8, 0.75))) == INVERTED


def test_dark_joints_around_light_faces_keep_the_defaults():
    img = tiles(face=(0.8, 0.8, 0.78), joint=(0.1, 0.1, 0.1))
    joints = find_joints(tone_classes(img))
    assert joints is not None and not joints["brighter"]     # found, and dark: already low
    assert estimate_map_defaults(img) == {}


def test_bright_specks_stripes_and_noise_are_not_joints():
    rng = np.random.default_rng(1)
    dark = np.full((256, 256, 3), 0.2, np.float32)
    specks = dark.copy()
    specks[rng.random((256, 256)) < 0.03] = 0.9              # scattered: not a network
    stripes = dark.copy()
    stripes[:, ::16] = stripes[:, 1::16] = 0.9               # grain: does not cut faces apart
    noise = rng.random((256, 256, 3)).astype(np.float32)
    for img in (specks, stripes, noise):
        assert estimate_map_defaults(img) == {}


def test_the_procedural_bricks_are_light_mortar():
    assert estimate_map_defaults(bricks()) == INVERTED


def test_lengths_and_texel_sizes():
    assert parse_length("2.4m") == 2.4 and parse_length("240 cm") == pytest.approx(2.4)
    assert parse_length("8ft") == pytest.approx(2.4384) and parse_length("0.5") == 0.5
    for bad in ("two metres", "-1m", "0", "3 parsecs"):
        with pytest.raises(TexgenError, match="length"):
            parse_length(bad)
    assert texel_size_from(None, "1.8m", 576) == pytest.approx(0.003125)
    assert texel_size_from(0.002, None, 576) == 0.002 and texel_size_from(None, None, 64) is None
    with pytest.raises(TexgenError, match="not both"):
        texel_size_from(0.002, "1m", 576)


def test_map_settings_start_from_the_model_and_give_way_to_the_user():
    s = Surface(0.003, {"height_invert": True, "normal_strength": 6.0})
    assert s.params() == MapParams(height_invert=True, normal_strength=6.0)
    assert s.params(height_invert=False, normal_strength=None).height_invert is False
    assert s.params(normal_strength=None).normal_strength == 6.0     # None: not given
    assert Surface.from_metadata(s.to_metadata()) == s
    assert Surface.from_metadata({}) == Surface()       # files exported before surfaces
    with pytest.raises(TexgenError, match="unknown map setting"):
        Surface(None, {"height_flip": True})


def test_the_builtin_carries_its_size_and_map_defaults():
    """From the procedural wall's construction and the estimate, as the README's rebuild
    commands record them; the shipped ONNX export carries the same."""
    shipped = Surface.from_dict(checkpoint.load_model(builtin_path("bricks"))[1]["surface"])
    exported = OnnxPainter(builtin_onnx("bricks"), device="cpu", threads=1).surface
    for s in (shipped, exported):
        assert s.texel_size == pytest.approx(BRICKS_TEXEL_SIZE, rel=1e-9)     # 3.125 mm
        assert s.map_defaults == INVERTED


def test_builtin_bricks_maps_have_recessed_matte_mortar():
    """The issue's measurement, the other way round: with the defaults the light mortar is now
    the lowest and roughest part of the wall."""
    p = OnnxPainter(builtin_onnx("bricks"), device="cpu", threads=1)
    img = p.paint(256, 256, seed=0)
    maps = material_maps(img, p.maps, ["color", "height", "roughness"], p.surface.params())
    lum = maps["color"].mean(axis=2)
    mortar = lum > np.quantile(lum, 0.85)        # the lightest pixels: mortar
    brick = lum < np.quantile(lum, 0.5)
    assert maps["height"][mortar].mean() < maps["height"][brick].mean() - 0.2
    assert maps["roughness"][mortar].mean() > maps["roughness"][brick].mean() + 0.1


def test_train_records_texel_size_and_estimated_defaults(tmp_path, monkeypatch):
    monkeypatch.setitem(train_psgan.PRESETS, "fast", (
        tiny_config(), TrainConfig(iters=2, batch=2, patch=32, ckpt_every=2, preview_every=2)))
    img = tmp_path / "wall.png"
    save_image(img, tiles(face=(0.45, 0.2, 0.15), joint=(0.8, 0.8, 0.75), size=128))
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])
    r = run("train", img, "--out", tmp_path / "m", "--iters", 2, "--patch", 32,
            "--exemplar-width", "64cm", "--normal-strength", "7")
    assert r.exit_code == 0, r.output
    surface = checkpoint.load_model(tmp_path / "m")[1]["surface"]
    assert surface == {"texel_size": pytest.approx(0.005),
                       "map_defaults": {**INVERTED, "normal_strength": 7.0}}
    # --resume keeps what the first run recorded
    r = run("train", img, "--out", tmp_path / "m", "--iters", 4, "--patch", 32, "--resume")
    assert r.exit_code == 0, r.output
    assert checkpoint.load_model(tmp_path / "m")[1]["surface"] == surface
    # a user's --no-height-invert wins over the estimate
    r = run("train", img, "--out", tmp_path / "n", "--iters", 2, "--patch", 32, "--no-height-invert")
    assert r.exit_code == 0, r.output
    surface = checkpoint.load_model(tmp_path / "n")[1]["surface"]
    assert surface == {"texel_size": None,
                       "map_defaults": {"height_invert": False, "roughness_invert": True}}
    # annotate sets them on a finished model; export carries them into the ONNX file
    r = run("annotate", tmp_path / "n", "--texel-size", "0.004")
    assert r.exit_code == 0, r.output
    r = run("export", tmp_path / "n", "--out", tmp_path / "n.onnx")
    assert r.exit_code == 0, r.output
    meta = OnnxPainter(tmp_path / "n.onnx", device="cpu").metadata
    assert meta["texel_size"] == "0.004"
    assert json.loads(meta["map_defaults"]) == {"height_invert": False, "roughness_invert": True}
    r = run("train", img, "--out", tmp_path / "o", "--texel-size", "0.1", "--exemplar-width", "1m")
    assert r.exit_code == 1 and r.output.strip() == "error: give --texel-size or --exemplar-width, not both"


def test_generate_and_export_set_start_from_the_models_defaults(tmp_path):
    """The built-in's light mortar is recessed in the CLI's and export-set's height maps, as
    in the add-on's, unless the user says otherwise."""
    from texgen.runtime.imageio import read_image
    model = builtin_onnx("bricks")
    p = OnnxPainter(model, device="cpu")
    img = p.paint(128, 128, seed=1)
    want = {inv: material_maps(img, p.maps, ["height"], p.surface.params(height_invert=inv))["height"]
            for inv in (True, False)}
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])
    r = run("generate", "--size", "128", "--seed", "1", "--maps", "height", "--bits", "16",
            "--out", tmp_path / "a.png")
    assert r.exit_code == 0, r.output
    r = run("generate", "--size", "128", "--seed", "1", "--maps", "height", "--bits", "16",
            "--no-height-invert", "--out", tmp_path / "b.png")
    assert r.exit_code == 0, r.output
    r = run("export-set", "--model", model, "--seeds", "1", "--size", "128", "--maps", "height",
            "--out", tmp_path / "lib")
    assert r.exit_code == 0, r.output
    assert "painted on CPU" in r.stdout
    got = {"default": read_image(tmp_path / "a_disp.png", channels=1)[..., 0],
           "user": read_image(tmp_path / "b_disp.png", channels=1)[..., 0],
           "set": read_image(tmp_path / "lib/model_0001/model_0001_disp.png", channels=1)[..., 0]}
    for name, inv in (("default", True), ("user", False), ("set", True)):
        assert np.abs(got[name] - want[inv]).max() <= 1 / 65535 + 1e-6, name
    assert np.abs(want[True] - want[False]).mean() > 0.1
