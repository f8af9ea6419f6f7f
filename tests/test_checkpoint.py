"""Training writes a complete, exactly resumable model folder; the loader trusts nothing."""

import os
import pickle
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import seam_ratio, stripes, tiny_config
from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.models.psgan import Generator
from texgen.paint import load_generator, torch_runner
from texgen.runtime.canvas import synthesize
from texgen.runtime.imageio import read_image
from texgen.train.psgan import TrainConfig, train

MODEL_CFG = tiny_config()


def _train(out, iters, resume=False):
    cfg = TrainConfig(iters=iters, batch=2, patch=32, ckpt_every=2, preview_every=2, seed=0)
    return train([stripes(64, 64)], out, MODEL_CFG, cfg, resume=resume,
                 provenance={"test": True}, log=lambda *a: None)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Run A: 4 iterations in one go."""
    out = tmp_path_factory.mktemp("straight") / "model"
    _train(out, 4)
    return out


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Run B: 2 iterations, then resumed to 4."""
    out = tmp_path_factory.mktemp("resumed") / "model"
    _train(out, 2)
    _, meta = checkpoint.load_model(out)
    assert meta["iteration"] == 2
    _train(out, 4, resume=True)
    return out


# ----------------------------------------------------------------------------- training output

def test_training_writes_every_file_and_no_temp_files(straight):
    names = set(os.listdir(straight))
    for f in ("model.safetensors", "training.safetensors", "exemplar.png", "preview.png"):
        assert f in names, f
    assert not [n for n in names if ".tmp" in n], names
    assert read_image(straight / "preview.png").shape[0] == 512     # exemplar | 2x2 tiled sample
    assert read_image(straight / "exemplar.png").shape[:2] == (64, 64)


def test_model_metadata(straight):
    tensors, meta = checkpoint.load_model(straight)
    assert meta["iteration"] == 4
    assert meta["provenance"] == {"test": True}
    assert meta["train"]["iters"] == 4 and meta["train"]["patch"] == 32
    cfg = meta["config"]
    assert cfg["g_widths"] == [16, 8, 8, 8] and cfg["channels"] == 3
    # waves start at the exemplar's period (8 px): k_x = 2 pi * 32 / 8 rad per cell
    assert cfg["init_k"] is not None and len(cfg["init_k"]) == 2
    assert any(abs(abs(k) - 2 * np.pi * 32 / 8) < 1e-4 for k in cfg["init_k"][1])
    # the file alone is a whole model
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    assert "waves.mlp.0.weight" in tensors


def test_trained_model_paints_seamlessly(straight):
    G, meta = load_generator(straight / "model.safetensors")   # the file works as well as the folder
    assert not G.training
    cfg = G.cfg
    img = synthesize(torch_runner(G), cfg.layout, cfg.scale, G.margin, 3 * cfg.scale,
                     2 * cfg.scale, seed=0)
    assert np.isfinite(img).all() and img.std() > 1e-4
    assert seam_ratio(img, axis=2) <= 1.5 and seam_ratio(img, axis=1) <= 1.5


def test_training_changes_the_weights(straight):
    """The saved generator is not its initialisation: training really ran."""
    from texgen.models.psgan import PSGANConfig
    tensors, meta = checkpoint.load_model(straight)
    torch.manual_seed(0)                                  # train() seeds torch with cfg.seed
    init = Generator(PSGANConfig.from_dict(meta["config"])).state_dict()
    lr, iters = meta["train"]["lr"], meta["train"]["iters"]
    for k in ("net.0.weight", "net.12.weight", "waves.mlp.2.bias"):
        step = (tensors[k] - init[k]).abs().max().item()
        # moved, but only as far as a few Adam steps of size ~lr can move it (so `init` is
        # really where training started; a different init differs by ~0.02 per weight)
        assert 0 < step <= 3 * lr * iters, (k, step)


def test_resume_is_exact(straight, resumed):
    a, meta_a = checkpoint.load_model(straight)
    b, meta_b = checkpoint.load_model(resumed)
    assert meta_b["iteration"] == 4
    assert a.keys() == b.keys()
    diffs = {k: (a[k].double() - b[k].double()).abs().max().item()
             for k in a if not torch.equal(a[k], b[k])}
    assert not diffs, f"resumed weights differ from straight training: {diffs}"
    ta, _ = checkpoint._read(straight / checkpoint.TRAIN_FILE)
    tb, _ = checkpoint._read(resumed / checkpoint.TRAIN_FILE)
    for k in ta:
        if k.startswith(("G.", "D.", "opt_")):
            assert torch.equal(ta[k], tb[k]), k


def test_resume_restores_optimizer_and_rng(straight):
    from texgen.models.psgan import Discriminator, PSGANConfig
    cfg = PSGANConfig.from_dict(checkpoint.load_model(straight)[1]["config"])
    G, D = Generator(cfg), Discriminator(cfg)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    rng, meta = checkpoint.load_training(straight, G, D, opt_g, opt_d)
    assert meta["iteration"] == 4
    st = opt_g.state_dict()["state"]
    assert len(st) == len(list(G.parameters()))
    assert all(float(s["step"]) == 4 for s in st.values())
    assert opt_g.param_groups[0]["betas"] == (0.5, 0.999) or list(opt_g.param_groups[0]["betas"]) == [0.5, 0.999]
    assert isinstance(rng, np.random.Generator)
    # the stored generator is the training one (running statistics), the model file is the
    # recalibrated copy: same conv weights
    model, _ = checkpoint.load_model(straight)
    assert torch.equal(model["net.0.weight"], G.state_dict()["net.0.weight"])


def test_resume_after_finishing_is_a_no_op_for_weights(straight, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(straight, copy)
    before, _ = checkpoint.load_model(copy)
    _train(copy, 4, resume=True)
    after, _ = checkpoint.load_model(copy)
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_patch_must_be_a_multiple_of_scale(tmp_path):
    cfg = TrainConfig(iters=1, batch=2, patch=48)
    with pytest.raises(TexgenError, match="multiple of 32"):
        train([stripes()], tmp_path / "m", MODEL_CFG, cfg, log=lambda *a: None)
    assert not (tmp_path / "m" / "model.safetensors").exists()


# ----------------------------------------------------------------------------- tampering

@pytest.fixture
def model_copy(straight, tmp_path):
    data = (straight / "model.safetensors").read_bytes()
    p = tmp_path / "model.safetensors"
    p.write_bytes(data)
    return p, data


@pytest.fixture
def no_unpickling(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the loader must never unpickle")
    monkeypatch.setattr(torch, "load", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)


def test_load_without_unpickling(straight, no_unpickling):
    tensors, meta = checkpoint.load_model(straight)
    assert meta["iteration"] == 4
    from texgen.models.psgan import Discriminator, PSGANConfig
    cfg = PSGANConfig.from_dict(meta["config"])
    G, D = Generator(cfg), Discriminator(cfg)
    checkpoint.load_training(straight, G, D, torch.optim.Adam(G.parameters()),
                             torch.optim.Adam(D.parameters()))


def test_flipped_weight_byte_fails_checksum(model_copy, no_unpickling):
    p, data = model_copy
    header_len = struct.unpack("<Q", data[:8])[0]
    assert len(data) - 16 > 8 + header_len            # the byte below is in the tensor data
    bad = bytearray(data)
    bad[-16] ^= 0x01
    p.write_bytes(bytes(bad))
    with pytest.raises(TexgenError, match="checksum"):
        checkpoint.load_model(p)
    with pytest.raises(TexgenError, match="checksum"):
        load_generator(p)


def test_truncated_file(model_copy, no_unpickling):
    p, data = model_copy
    for n in (len(data) - 100, len(data) // 2, 20, 3, 0):
        p.write_bytes(data[:n])
        with pytest.raises(TexgenError):
            checkpoint.load_model(p)


def test_random_bytes(tmp_path, no_unpickling):
    p = tmp_path / "model.safetensors"
    rng = np.random.default_rng(0)
    for n in (10, 1000, 5000):
        p.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        with pytest.raises(TexgenError):
            checkpoint.load_model(p)
    p.write_bytes(b"\x80\x02}q\x00." * 20)             # a pickle is not a model either
    with pytest.raises(TexgenError):
        checkpoint.load_model(p)


def test_safetensors_without_texgen_metadata(tmp_path, no_unpickling):
    p = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(p))
    with pytest.raises(TexgenError, match="not a texgen model"):
        checkpoint.load_model(p)
    save_file({"w": torch.zeros(3)}, str(p), metadata={"format": "other/1"})
    with pytest.raises(TexgenError, match="not a texgen model"):
        checkpoint.load_model(p)


def test_missing_model(tmp_path):
    with pytest.raises(TexgenError, match="no model"):
        checkpoint.load_model(tmp_path)
    with pytest.raises(TexgenError, match="no model"):
        checkpoint.load_model(tmp_path / "nothing.safetensors")


def test_weights_that_do_not_match_the_config(tmp_path, straight):
    """A consistent file whose config does not fit its weights is a TexgenError too."""
    tensors, meta = checkpoint.load_model(straight)
    meta["config"]["g_widths"] = [8, 8, 8, 8]
    G = Generator(MODEL_CFG)
    G.load_state_dict(tensors)
    checkpoint.save_model(tmp_path, G, meta)
    with pytest.raises(TexgenError, match="do not match"):
        load_generator(tmp_path)


def test_models_saved_with_the_retired_resize_conv_field(tmp_path, straight):
    """Models saved while resize_conv was an option carry it in their config: off, they load
    and paint as before; on, they are refused in one line."""
    tensors, meta = checkpoint.load_model(straight)
    G = Generator(MODEL_CFG)
    G.load_state_dict(tensors)
    for value in (0, 1):
        checkpoint.save_model(tmp_path / str(value), G,
                              {**meta, "config": {**meta["config"], "resize_conv": value}})
    loaded, _ = load_generator(tmp_path / "0")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in tensors.items())
    with pytest.raises(TexgenError, match="resize_conv, an option texgen no longer has"):
        load_generator(tmp_path / "1")


def test_save_model_round_trip(tmp_path):
    torch.manual_seed(3)
    G = Generator(MODEL_CFG)
    checkpoint.save_model(tmp_path, G, {"config": MODEL_CFG.to_dict(), "note": [1, "x"]})
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]
    tensors, meta = checkpoint.load_model(tmp_path / "model.safetensors")
    assert meta["note"] == [1, "x"]
    for k, v in G.state_dict().items():
        assert torch.equal(tensors[k], v), k


def test_damaged_metadata_is_a_texgen_error(model_copy):
    """A flipped byte inside the stored config JSON (outer header still valid) is reported
    as a damaged model: the checksum covers the metadata as well as the weights."""
    p, data = model_copy
    header_len = struct.unpack("<Q", data[:8])[0]
    key = b'n_local\\": '
    i = data.index(key, 8, 8 + header_len) + len(key)
    bad = bytearray(data)
    bad[i:i + 1] = b"x"                              # '4' -> 'x': inner JSON broken
    p.write_bytes(bytes(bad))
    with pytest.raises(TexgenError, match="checksum"):
        checkpoint.load_model(p)


def test_resume_is_exact_while_the_discriminator_sits_out(tmp_path):
    """The discriminator-skip state (its last loss) is part of the checkpoint: a resumed run
    skips exactly the D steps the straight run skipped."""
    def run(out, iters, resume=False):
        cfg = TrainConfig(iters=iters, batch=2, patch=32, ckpt_every=2, preview_every=2, seed=0,
                          d_skip_within=100.0)        # D sits out every other step
        train([stripes()], out, MODEL_CFG, cfg, resume=resume, log=lambda *a: None)
    run(tmp_path / "a", 4)
    run(tmp_path / "b", 2)
    run(tmp_path / "b", 4, resume=True)
    a, _ = checkpoint.load_model(tmp_path / "a")
    b, _ = checkpoint.load_model(tmp_path / "b")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ctrl_c_rolls_back_the_interrupted_steps_draws(tmp_path):
    """The save on Ctrl-C stores the stream as it was before the cut-short step, so --resume
    draws what an uninterrupted run would have (PSGAN and texnet share run_iterations)."""
    from texgen.train.common import run_iterations
    rng, saved = np.random.default_rng(5), []

    def step(it):
        rng.uniform(size=3)
        if it == 2:
            raise KeyboardInterrupt
        return True, {}
    with pytest.raises(KeyboardInterrupt):
        run_iterations(step, 0, 5, lambda done: saved.append((done, rng.uniform())),
                       lambda done: None, 100, 100, tmp_path, log=lambda *a: None, rng=rng)
    ref = np.random.default_rng(5)
    ref.uniform(size=6)                                 # the two finished steps' draws
    assert saved == [(2, ref.uniform())]
