"""Quality metrics move the right way, and `texgen eval` writes its report."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import stripes
from texgen import checkpoint
from texgen.builtin.procedural import bricks
from texgen.cli import main as cli
from texgen.errors import TexgenError
from texgen.eval import metrics as M
from texgen.models.vgg import VGG19


@pytest.fixture(scope="module")
def vgg():
    return VGG19(last="relu4_1")


@pytest.fixture(scope="module")
def wall():
    return bricks(192, seed=0)


def blur(img, k=5):
    """Box blur that wraps (keeps an image periodic)."""
    out = np.zeros_like(img)
    for dy in range(-(k // 2), k // 2 + 1):
        for dx in range(-(k // 2), k // 2 + 1):
            out += np.roll(img, (dy, dx), axis=(0, 1))
    return out / k ** 2


def test_seam_score_is_one_for_a_tile_and_high_for_a_photo_edge(wall):
    tile = blur(np.random.default_rng(0).random((64, 64, 3), dtype=np.float32), 3)   # wraps
    assert 0.8 < M.seam_score(tile) < 1.2
    ramp = np.broadcast_to(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], (64, 64, 3))
    assert M.seam_score(ramp + 0.01 * tile) > 10
    assert M.seam_score(np.roll(wall, (100, 77), axis=(0, 1))) == pytest.approx(M.seam_score(wall), rel=1.0)


def test_histogram_distance_grows_with_a_colour_shift(wall):
    assert M.histogram_distance(wall, wall) == 0
    d1 = M.histogram_distance(np.clip(wall + 0.05, 0, 1), wall)
    d2 = M.histogram_distance(np.clip(wall + 0.2, 0, 1), wall)
    assert 0.02 < d1 < d2
    # position does not matter, only which colours and how much of each
    assert M.histogram_distance(np.roll(wall, 50, axis=1), wall) < 1e-6


def test_spectrum_distance_sees_blur_but_not_position(wall):
    shifted = np.roll(wall, (31, 57), axis=(0, 1))
    same = M.spectrum_distance(shifted, wall)
    soft, softer = M.spectrum_distance(blur(wall, 3), wall), M.spectrum_distance(blur(wall, 7), wall)
    assert same < 0.2 < soft < softer


def test_fine_energy_sees_speckle_and_blur(wall):
    assert abs(M.fine_energy([wall], wall) - 1) < 1e-9
    speckle = np.clip(wall + 0.05 * np.random.default_rng(0).standard_normal(wall.shape), 0, 1)
    assert M.fine_energy([speckle], wall) > 1.5
    assert M.fine_energy([blur(wall, 3)], wall) < 0.5


def test_checker_energy_sees_a_halftone_that_fine_energy_misses(wall):
    # a faint 1 px checkerboard: its energy lies in the spectrum's corners, beyond 0.5 cycles/px
    checker = np.indices(wall.shape[:2]).sum(0)[..., None] % 2 * 2 - 1.0
    halftone = np.clip(wall + 0.03 * checker, 0, 1)
    assert abs(M.checker_energy([wall], wall) - 1) < 1e-9
    assert M.checker_energy([halftone], wall) > 5
    assert abs(M.fine_energy([halftone], wall) - 1) < 0.2
    assert M.checker_energy([blur(wall, 3)], wall) < 0.5


def test_chroma_energy_sees_colour_grain_that_fine_energy_reads_as_brightness(wall):
    assert abs(M.chroma_energy([wall], wall) - 1) < 1e-9
    noise = 0.03 * np.random.default_rng(0).standard_normal(wall.shape)
    colour = np.clip(wall + noise, 0, 1)                # each channel its own grain
    grey = np.clip(wall + noise[..., :1], 0, 1)         # one grain in every channel
    assert M.chroma_energy([colour], wall) > 5
    # brightness grain is fine_energy's, not colour: the chroma is the photo's (but clipping)
    assert M.fine_energy([grey], wall) > 1.5
    assert abs(M.chroma_energy([grey], wall) - 1) < 0.1
    assert M.chroma_energy([blur(wall, 3)], wall) < 0.5


def test_chroma_energy_of_a_grey_photo_is_left_out(wall):
    grey_wall = np.repeat(wall.mean(-1, keepdims=True), 3, -1)
    tinted = np.clip(grey_wall + [0.02, 0.0, -0.02], 0, 1)   # colour, but no colour grain
    speckled = np.clip(grey_wall + 0.03 * np.random.default_rng(0).standard_normal(wall.shape), 0, 1)
    assert M.is_grey(grey_wall) and not M.is_grey(tinted) and not M.is_grey(wall)
    assert M.chroma_energy([speckled], grey_wall) is None
    assert M.chroma_energy([speckled], tinted) > 1e3     # the ratio it would have been
    assert M.chroma_energy([speckled], wall) > 5


def test_period_error_is_zero_at_the_right_period_and_grows_off_it():
    ex = stripes(128, 128, period=16.0)
    assert M.period_error(ex, [stripes(128, 128, period=16.0, seed=1)]) < 0.05
    off = M.period_error(ex, [stripes(128, 128, period=21.333, seed=1)])
    assert 0.15 < off < 0.5                      # 16 px vs 21.3 px: a quarter off


def test_cell_lattice_sees_one_motif_per_cell_but_not_a_stationary_texture():
    rng = np.random.default_rng(0)
    # what a generator that ignores its local noise paints: one motif in every 32 px cell
    weave = np.tile(rng.random((32, 32, 3)), (8, 8, 1)) + 0.1 * rng.random((256, 256, 3))
    noise = rng.random((256, 256, 3))
    assert M.cell_lattice([weave], 32) > 0.85
    assert M.cell_lattice([noise], 32) < 2 / 64          # chance: 1 / 64 blocks
    # wherever the crop starts in the weave
    assert M.cell_lattice([np.roll(weave, (5, 11), (0, 1))], 32) == \
        pytest.approx(M.cell_lattice([weave], 32))
    # the training loss runs the same function on tensors: it agrees, batched
    t = torch.from_numpy(np.stack([weave, noise]).transpose(0, 3, 1, 2).astype(np.float32))
    assert M.lattice_share(t, 32).numpy() == pytest.approx(
        [M.cell_lattice([weave], 32), M.cell_lattice([noise], 32)], rel=1e-4)


def test_cell_contrast_sees_busy_and_flat_places_fixed_to_the_cell():
    rng = np.random.default_rng(0)
    noise = rng.random((4, 3, 256, 256))
    # the same noise, with a contrast that depends on the px position in its 32 px cell
    gain = np.tile(rng.random((32, 32)) ** 2, (8, 8))
    blocks = 0.5 + (noise - 0.5) * gain
    assert M.contrast_spread(noise, 32) < 0.01            # chance, pooled over 256 blocks
    assert M.contrast_spread(blocks, 32) > 0.5
    assert M.lattice_share(blocks, 32).max() < 2 / 64     # no motif: the first order is blind
    # the report's form: (H, W, 3) images, pooled
    assert M.cell_contrast(list(blocks.transpose(0, 2, 3, 1)), 32) == \
        pytest.approx(M.contrast_spread(blocks, 32))
    # the same function on tensors, as the training loss runs it
    assert float(M.contrast_spread(torch.from_numpy(blocks), 32)) == \
        pytest.approx(M.contrast_spread(blocks, 32), rel=1e-6)


def test_texture_distance_prefers_the_same_texture(vgg, wall):
    grams = lambda crops: M.gram_matrices(vgg, crops)
    crops = M.random_crops(wall, 64, 6, seed=0)
    ref = grams(crops[:3])
    same = M.texture_distance(ref, grams(crops[3:]))
    other = M.texture_distance(ref, grams(M.random_crops(stripes(128, 128), 64, 3)))
    blurred = M.texture_distance(ref, grams([blur(c, 5) for c in crops[3:]]))
    assert same < 0.5 * blurred and same < 0.5 * other


def test_diversity_is_zero_for_a_collapsed_generator(vgg, wall):
    grams = lambda crops: M.gram_matrices(vgg, crops)
    ex = M.random_crops(wall, 64, 4, seed=0)
    collapsed = [[ex[0], ex[1]]] * 3                # three seeds, all painting the same
    assert M.diversity([grams(c) for c in collapsed], grams(ex)) == 0
    varied = [M.random_crops(wall, 64, 2, seed=k) for k in (1, 2, 3)]
    assert 0.3 < M.diversity([grams(c) for c in varied], grams(ex)) < 3


def test_copy_score_flags_a_pasted_exemplar(wall):
    pasted = wall[32:160, 40:168]
    assert M.copy_score(pasted, wall) > 0.9
    other = bricks(192, seed=5, brick=(48, 24))[:128, :128]   # the same kind of texture, drawn anew
    assert M.copy_score(other, wall) < 0.2
    with pytest.raises(ValueError):
        M.copy_score(pasted[:16, :16], wall)


def test_vgg_reads_torchvision_state_dicts_and_rejects_others(tmp_path, vgg):
    # a torchvision-format dict holding the same 3x3 convs: only the input mapping differs
    sd = {}
    idx = 0
    for k, conv in enumerate(vgg.convs):
        sd[f"features.{idx}.weight"], sd[f"features.{idx}.bias"] = conv.weight, conv.bias
        idx += 2 + (k in vgg.pool_after)
    torch.save(sd, tmp_path / "tv.pth")
    tv = VGG19(tmp_path / "tv.pth", last="relu4_1")
    x = torch.rand(1, 3, 8, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    assert torch.allclose(tv.to_input(x), (x - mean) / std, atol=1e-6)
    assert torch.equal(tv.convs[5].weight, vgg.convs[5].weight)
    (tmp_path / "junk.pth").write_bytes(b"not a weights file")
    with pytest.raises(TexgenError, match="not a readable weights file"):
        VGG19(tmp_path / "junk.pth")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(TexgenError, match="not a VGG-19"):
        VGG19(tmp_path / "other.pth")


def test_eval_image_scores_tileability(tmp_path, wall):
    Image.fromarray((wall * 255).astype(np.uint8)).save(tmp_path / "tile.png")
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.uint8)[None, :, None], (96, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    r = CliRunner().invoke(cli, ["eval", "--image", str(tmp_path / "tile.png")])
    assert r.exit_code == 0, r.output
    tile = json.loads(r.output)
    r = CliRunner().invoke(cli, ["eval", "--image", str(tmp_path / "ramp.png")])
    assert json.loads(r.output)["seam_score"] > 10 * tile["seam_score"]
    assert any(abs(p - 24) < 1 for p in tile["dominant_periods_px"])    # the brick course


def test_eval_model_writes_report(tmp_path, tiny_G, wall):
    folder = tmp_path / "model"
    checkpoint.save_model(folder, tiny_G, {"config": tiny_G.cfg.to_dict(),
                                           "provenance": {"method": "psgan"}})
    Image.fromarray((wall * 255).astype(np.uint8)).save(tmp_path / "wall.png")
    out = tmp_path / "report"
    r = CliRunner().invoke(cli, ["eval", "--model", str(folder), "--report", str(out),
                                 "--exemplar", str(tmp_path / "wall.png"), "--seeds", "1-2",
                                 "--size", "64"])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "metrics.json").read_text())
    assert set(data["readings"]) == set(data["metrics"])
    assert set(data["metrics"]) == {"texture_distance", "histogram_distance", "spectrum_distance",
                                    "fine_energy", "checker_energy", "chroma_energy", "seam_score",
                                    "period_error", "cell_lattice", "cell_contrast", "diversity",
                                    "copy_score"}
    assert 0 <= data["metrics"]["cell_lattice"] <= 1
    assert data["metrics"]["cell_contrast"] >= 0 and data["exemplar_baseline"]["cell_contrast"] >= 0
    # an untrained generator is far from the bricks: the report must say so
    assert data["metrics"]["texture_distance"] > 2 * data["exemplar_baseline"]["texture_distance"]
    page = (out / "index.html").read_text()
    for name in ["exemplar.png", "sample_seed1.png", "sample_seed2.png", "repeat_2x2.png", "morph.png"]:
        assert (out / name).is_file() and name in page
    assert Image.open(out / "repeat_2x2.png").size == (128, 128)
    r = CliRunner().invoke(cli, ["eval", "--model", str(folder), "--report", str(out)])
    assert r.exit_code == 1 and "--exemplar" in r.output
    # a grey photo: every metric but chroma_energy, which has no meaning over no colour
    Image.fromarray((wall.mean(-1) * 255).astype(np.uint8)).save(tmp_path / "grey.png")
    r = CliRunner().invoke(cli, ["eval", "--model", str(folder), "--report", str(out),
                                 "--exemplar", str(tmp_path / "grey.png"), "--seeds", "1-2",
                                 "--size", "64"])
    assert r.exit_code == 0, r.output
    grey = json.loads((out / "metrics.json").read_text())
    assert set(grey["metrics"]) == set(data["metrics"]) - {"chroma_energy"}
    assert set(grey["exemplar_baseline"]) == set(data["exemplar_baseline"]) - {"chroma_energy"}
