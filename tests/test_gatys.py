"""Gatys' pixel optimisation and the Gram loss it shares with texnet: it lowers the loss,
repeats itself exactly, and refuses what it cannot do in one line."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import stripes
from texgen.cli import main as cli
from texgen.errors import TexgenError
from texgen.train.gatys import GatysConfig, synthesize
from texgen.train.descriptor import DescriptorLoss


@pytest.fixture(scope="module")
def loss_fn():
    return DescriptorLoss([stripes(64, 64)])


def test_gram_loss_tells_the_exemplar_from_noise(loss_fn):
    own = torch.from_numpy(stripes(64, 64, seed=1).transpose(2, 0, 1).copy())[None]
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert loss_fn(own).item() < 0.1 * loss_fn(noise).item()


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_lowers_the_gram_loss_and_repeats_exactly(loss_fn, optimizer):
    start = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32))
    before = loss_fn(start).item()
    cfg = GatysConfig(iters=12, optimizer=optimizer, lr=0.05, seed=0)
    img, loss = synthesize(loss_fn, 32, 32, cfg, progress=False)
    assert img.shape == (32, 32, 3) and 0 <= img.min() and img.max() <= 1
    assert loss < 0.7 * before
    again, loss2 = synthesize(loss_fn, 32, 32, cfg, progress=False)
    assert np.array_equal(img, again) and loss == loss2      # seeded: the same image every run


def test_bad_requests_are_one_line_errors(loss_fn, tmp_path):
    with pytest.raises(TexgenError, match="too small"):
        synthesize(loss_fn, 20, 64, GatysConfig(iters=1), progress=False)
    with pytest.raises(TexgenError, match="optimizer"):
        synthesize(loss_fn, 32, 32, GatysConfig(iters=1, optimizer="sgd"), progress=False)
    with pytest.raises(TexgenError, match="too small"):
        DescriptorLoss([stripes(20, 20)])
    with pytest.raises(TexgenError, match="style scale"):
        DescriptorLoss([stripes(64, 64)], style_scale=100)


def test_cli_synth(tmp_path):
    ex = tmp_path / "ex.png"
    Image.fromarray((stripes(64, 64) * 255).astype(np.uint8)).save(ex)
    run = lambda *a: CliRunner().invoke(cli, [str(x) for x in a])
    res = run("synth", ex, "--method", "gatys", "--size", "40x32", "--iters", 3, "--style-scale", 0.75,
              "--out", tmp_path / "g.png")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "g.png").size == (40, 32)
    res = run("synth", ex, "--size", "64", "--descriptor-weights", tmp_path / "nope.pth",
              "--out", tmp_path / "x.png")
    assert res.exit_code == 1 and res.output.startswith("error:") and "VGG-19" in res.output
