"""Training data loading and patch sampling. Images are made in tmp_path."""

import numpy as np
import pytest
from PIL import Image

from texgen.data import PatchSampler, load_exemplars, load_stack
from texgen.errors import TexgenError
from texgen.runtime.imageio import save_image


def _img(h, w, c=3, seed=0):
    return np.random.default_rng(seed).random((h, w, c)).astype(np.float32)


def test_load_exemplars_files_and_folders(tmp_path):
    (tmp_path / "dir").mkdir()
    save_image(tmp_path / "dir" / "b.png", np.zeros((16, 16, 3)))
    save_image(tmp_path / "dir" / "a.jpg", np.ones((20, 16, 3)))
    (tmp_path / "dir" / "notes.txt").write_text("not an image")
    save_image(tmp_path / "c.png", np.zeros((12, 12, 3)))
    imgs = load_exemplars([tmp_path / "dir", str(tmp_path / "c.png")])
    assert [im.shape for im in imgs] == [(20, 16, 3), (16, 16, 3), (12, 12, 3)]  # folder sorted


def test_load_exemplars_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TexgenError, match="no images found"):
        load_exemplars([tmp_path / "empty"])
    with pytest.raises(TexgenError, match="no such"):
        load_exemplars([tmp_path / "missing"])


def test_load_stack_channels_and_alignment(tmp_path):
    save_image(tmp_path / "color.png", _img(32, 32))
    save_image(tmp_path / "normal.png", _img(32, 32))
    Image.fromarray(np.zeros((32, 32), np.uint8)).convert("RGB").save(tmp_path / "rough.png")
    stack = load_stack({"color": tmp_path / "color.png", "normal": tmp_path / "normal.png",
                        "roughness": tmp_path / "rough.png"})
    assert stack.shape == (32, 32, 7) and stack.dtype == np.float32
    save_image(tmp_path / "bad.png", _img(16, 32))
    with pytest.raises(TexgenError, match=r"not aligned: bad.png is 32x16 but color.png is 32x32"):
        load_stack({"color": tmp_path / "color.png", "normal": tmp_path / "bad.png"})


def test_sampler_reproducible_and_in_range():
    imgs = [_img(40, 50, seed=1), _img(64, 33, seed=2)]
    a = PatchSampler(imgs, 32, np.random.default_rng(7)).sample(16)
    b = PatchSampler(imgs, 32, np.random.default_rng(7)).sample(16)
    assert a.shape == (16, 3, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert a.min() >= -1 and a.max() <= 1


def test_sampler_draws_images_uniformly():
    # A tiny and a large image: uniform over images (not area) gives ~50% each.
    imgs = [np.zeros((8, 8, 3), np.float32), np.ones((200, 300, 3), np.float32)]
    crops = PatchSampler(imgs, 8, np.random.default_rng(0)).sample(2000)
    frac = (crops[:, 0, 0, 0] > 0).mean()
    assert 0.45 <= frac <= 0.55


def test_sampler_crop_matches_source():
    img = _img(20, 20, seed=3)
    crop = PatchSampler([img], 20, np.random.default_rng(0)).sample(1)[0]
    assert np.allclose(crop, img.transpose(2, 0, 1) * 2 - 1)  # full-size patch, no flips


def test_sampler_rejects_small_image():
    with pytest.raises(TexgenError, match="100x80, smaller than the 128 px training patch"):
        PatchSampler([_img(80, 100)], 128, np.random.default_rng(0))
