"""Texture Networks and stylisation: tiles equal the torus, seams, exact resume, NaN steps,
ONNX parity, content of odd sizes, one-line errors. Tiny models (a cell is 4 px), real VGG-19."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import stripes
from texgen.export.onnx_export import export_onnx
from texgen import checkpoint
from texgen.cli import main as cli
from texgen.errors import TexgenError
from texgen.eval.metrics import seam_score
from texgen.train.batchnorm import calibrate_batchnorm
from texgen.models.texnet import TexNet, TexNetConfig
from texgen.paint import TorchPainter, load_generator, torch_runner
from texgen.runtime.canvas import synthesize
from texgen.runtime.noise import sample_noise
from texgen.runtime.onnx_painter import OnnxPainter
from texgen.runtime.stylize import content_noise, stylize
from texgen.runtime.tiling import tile_noise
from texgen.train.texnet import PRESETS, TexNetTrainConfig, step, train


def tiny(content: int = 0) -> TexNetConfig:
    return TexNetConfig(levels=3, noise=2, width=4, content=content)


def ready(cfg: TexNetConfig, seed: int = 0) -> TexNet:
    """An untrained net with exact batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    G = TexNet(cfg)
    rng = np.random.default_rng(seed)
    draw = (lambda s: content_noise(cfg.layout, rng.uniform(-1, 1, (2, 3, 12, 12)).astype(np.float32),
                                    cfg.scale, s)) if cfg.content else None
    calibrate_batchnorm(G, cells=3, batches=2, batch=2, draw=draw)
    return G


@pytest.fixture(scope="module", params=[0, 3], ids=["texnet", "stylize"])
def net(request):
    return ready(tiny(request.param))


# ----------------------------------------------------------------------------- tiles and seams

def test_interior_of_a_tile_equals_the_wrapped_torus(net):
    cfg, m, s = net.cfg, net.margin, net.cfg.scale
    H, W = 5, 6
    z = sample_noise(cfg.layout, H, W, seed=2)
    with torch.no_grad():
        whole = net(torch.from_numpy(z))
        for y0, x0, h, w in [(0, 0, H, W), (3, 4, 2, 2), (1, 5, 3, 1)]:
            zt, _, _ = tile_noise(z, y0, x0, h, w, m)
            part = net.interior(torch.from_numpy(zt))
            rows, cols = np.arange(y0 * s, (y0 + h) * s) % (H * s), np.arange(x0 * s, (x0 + w) * s) % (W * s)
            ref = whole[..., rows, :][..., cols]
            assert part.shape == ref.shape == (1, 3, h * s, w * s)
            assert (part - ref).abs().max().item() < 1e-5
        # the margin is needed: one cell less of context and the tile is too small
        zt, _, _ = tile_noise(z, 1, 1, 2, 2, m)
        assert net.interior(torch.from_numpy(zt[..., 1:-1, 1:-1])).shape[-1] < 2 * s


def test_texnet_canvas_tiles_exactly_and_wraps():
    G = ready(tiny())
    cfg, paint_tile = G.cfg, torch_runner(G)

    def run(z, ys, xs, torus):
        # only the coarsest noise (1 value per cell): an untrained net's finest noise would
        # make white noise, on which no seam can be seen (the control below needs structure)
        z = z.copy()
        z[:, cfg.noise:] = 0
        return paint_tile(z, ys, xs, torus)

    args = (cfg.layout, cfg.scale, G.margin, 9 * cfg.scale, 7 * cfg.scale)
    one = synthesize(run, *args, seed=4, tile=None)
    tiled = synthesize(run, *args, seed=4, tile=2)
    assert np.abs(one - tiled).max() < 1e-5
    assert one.std() > 1e-3                     # not flat (a flat image wraps trivially)
    img = one.transpose(1, 2, 0)
    assert seam_score(img) < 1.3
    # the check can fail: the image's left half, whose edges are unrelated, has a visible seam
    assert seam_score(img[:, : img.shape[1] // 2]) > seam_score(img) + 0.1
    other = synthesize(run, *args, seed=5)
    assert np.abs(one - other).mean() > 1e-3    # seeds differ


# ----------------------------------------------------------------------------- training

TRAIN = dict(iters=4, batch=2, patch=32, ckpt_every=100, preview_every=100, lr=1e-2)


def weights(folder):
    tensors, _ = checkpoint._read(folder / checkpoint.TRAIN_FILE)
    return {k: v for k, v in tensors.items() if k.startswith("G.")}


@pytest.mark.parametrize("extra", [{}, {"batch": 1, "diversity": 0.1}], ids=["plain", "diversity"])
def test_resume_is_exact(tmp_path, monkeypatch, extra):
    """Ctrl-C after 4 of 6 iterations (inside the learning-rate decay; the last one trains with
    fixed batch-norm statistics) and --resume give the weights of an uninterrupted run; with
    the diversity term on a batch of one too (its partner's noise comes from the stream)."""
    import texgen.train.texnet as tt
    img = [stripes(40, 40)]
    cfg = TexNetTrainConfig(**{**TRAIN, "iters": 6, "spectrum_weight": 1.0, **extra})
    said = []
    straight = train(img, tmp_path / "a", tiny(), cfg, log=said.append)
    assert "gram loss, spectrum loss 1" in said[0]          # the start line names its terms
    assert ("diversity 0.1" in said[0]) == bool(extra)
    calls, real_step = [], tt.step

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) > 4:
            raise KeyboardInterrupt
        return real_step(*a, **k)
    monkeypatch.setattr(tt, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(img, tmp_path / "b", tiny(), cfg, log=lambda *_: None)
    monkeypatch.setattr(tt, "step", real_step)
    assert checkpoint.load_model(tmp_path / "b")[1]["iteration"] == 4
    train(img, tmp_path / "b", tiny(), cfg, resume=True, log=lambda *_: None)
    a, b = weights(straight), weights(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    model, meta = checkpoint.load_model(tmp_path / "b")
    assert meta["iteration"] == 6 and meta["model"] == "texnet"
    # the model paints with the fixed statistics its last iterations trained with
    stats = [k for k in model if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(model[k], b["G." + k]) for k in stats)
    assert meta["provenance"]["method"] == "texnet"
    G, _ = load_generator(tmp_path / "b")
    assert isinstance(G, TexNet) and not G.training


def test_non_finite_steps_are_skipped():
    from texgen.train.descriptor import DescriptorLoss
    torch.manual_seed(0)
    G = TexNet(tiny())
    loss_fn = DescriptorLoss([stripes(32, 32)])
    opt = torch.optim.Adam(G.parameters(), 1e-2)
    before = {k: v.clone() for k, v in G.state_dict().items() if "running" not in k and "num_batches" not in k}
    z = torch.from_numpy(sample_noise(G.cfg.layout, 8, 8, seed=0, batch=2))
    z[0, 0, 0, 0] = float("nan")
    loss, _ = step(G, loss_fn, opt, z, None, TexNetTrainConfig())
    assert loss != loss                                             # NaN reported
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)    # and no update made
    assert not opt.state                                            # Adam's moments untouched
    loss, _ = step(G, loss_fn, opt, z.nan_to_num(0.5), None, TexNetTrainConfig())
    assert np.isfinite(loss) and opt.state                          # a finite batch steps


def test_wrong_inputs_are_one_line_errors(tmp_path):
    img = [stripes(40, 40)]
    with pytest.raises(TexgenError, match="multiple of 4"):
        train(img, tmp_path / "m", tiny(), TexNetTrainConfig(**{**TRAIN, "patch": 34}))
    with pytest.raises(TexgenError, match="content images"):
        train(img, tmp_path / "m", tiny(content=3), TexNetTrainConfig(**TRAIN))
    with pytest.raises(TexgenError, match="VGG-19 weights"):
        train(img, tmp_path / "m", tiny(), TexNetTrainConfig(**TRAIN, descriptor_weights=str(tmp_path / "none.pth")))
    with pytest.raises(TexgenError, match="RGB"):
        stylize(lambda *a: None, tiny(3).layout, 4, 4, np.zeros((9, 9), np.float32))


# ----------------------------------------------------------------------------- export

def save(G, folder, method):
    checkpoint.save_model(folder, G, {"model": "texnet", "config": G.cfg.to_dict(),
                                      "provenance": {"method": method}})
    return folder


def test_texnet_onnx_paints_the_torch_pixels(tmp_path):
    G = ready(tiny(), seed=1)
    for m in G.modules():                       # batch-norm statistics far from identity, so
        if isinstance(m, torch.nn.BatchNorm2d):  # folding them is really tested
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    folder = save(G, tmp_path / "m", "texnet")
    meta = export_onnx(folder, tmp_path / "m.onnx")
    assert meta["kind"] == "texnet" and meta["scale"] == "4" and meta["margin"] == "4"
    onnx_p, torch_p = OnnxPainter(tmp_path / "m.onnx", device="cpu"), TorchPainter(folder)
    assert onnx_p.layout == G.cfg.layout
    a = onnx_p.paint(36, 28, seed=3, tile=None)
    b = torch_p.paint(36, 28, seed=3, tile=None)
    assert a.shape == (3, 28, 36) and np.abs(a - b).max() <= 1e-4
    assert np.abs(onnx_p.paint(36, 28, seed=3, tile=3) - a).max() <= 1e-4
    # fp16: every level's noise is cast into the half-precision trunk (not only the first conv's)
    assert export_onnx(folder, tmp_path / "m16.onnx", fp16=True)["precision"] == "fp16"
    half = OnnxPainter(tmp_path / "m16.onnx", device="cpu").paint(36, 28, seed=3, tile=None)
    assert 0 < np.abs(half - b).max() <= 1e-2


def test_stylize_any_content_size_tiled_torch_and_onnx(tmp_path):
    G = ready(tiny(3))
    photo = stripes(23, 37)                                 # odd, not square, smaller than the margin
    run = torch_runner(G)
    one = stylize(run, G.cfg.layout, 4, G.margin, photo, seed=1)
    tiled = stylize(run, G.cfg.layout, 4, G.margin, photo, seed=1, tile=2)
    assert one.shape == (3, 23, 37) and np.isfinite(one).all()
    assert np.abs(one - tiled).max() < 1e-5
    # the content matters: another photo, another picture
    assert np.abs(stylize(run, G.cfg.layout, 4, G.margin, photo[::-1].copy(), seed=1) - one).mean() > 1e-4
    folder = save(G, tmp_path / "s", "stylize")
    meta = export_onnx(folder, tmp_path / "s.onnx")
    assert meta["kind"] == "stylize"
    p = OnnxPainter(tmp_path / "s.onnx", device="cpu")
    got = stylize(p.run, p.layout, p.scale, p.margin, photo, seed=1, tile=3)
    assert np.abs(got - one).max() <= 1e-4
    # painting noise alone is refused by the painter itself (generate, export-set, Blender)
    with pytest.raises(TexgenError, match="stylisation model"):
        p.paint(32, 32)


def test_stroke_scale_paints_bigger_strokes_at_the_content_size():
    """stroke_scale 2 paints the content at half size and resizes back: the same picture as
    stylising the half-size photo, and blurrier than stroke_scale 1 (its finest detail is
    gone); the output keeps the content's size."""
    from texgen.runtime.imageio import resize
    G = ready(tiny(3))
    run, photo = torch_runner(G), stripes(40, 56, period=9)
    one = stylize(run, G.cfg.layout, 4, G.margin, photo, seed=2)
    two = stylize(run, G.cfg.layout, 4, G.margin, photo, seed=2, stroke_scale=2)
    half = stylize(run, G.cfg.layout, 4, G.margin, resize(photo, 20, 28), seed=2)
    assert two.shape == one.shape == (3, 40, 56)
    back = np.clip(resize(half.transpose(1, 2, 0), 40, 56), -1, 1)      # Lanczos overshoots
    assert np.abs(two - back.transpose(2, 0, 1)).max() < 1e-5
    detail = lambda img: np.abs(np.diff(img, axis=2)).mean()
    assert detail(two) < 0.8 * detail(one)
    with pytest.raises(TexgenError, match="stroke scale"):
        stylize(run, G.cfg.layout, 4, G.margin, photo, stroke_scale=10)


# ----------------------------------------------------------------------------- command line

def test_cli_train_texnet_and_stylize(tmp_path):
    from PIL import Image
    ex, photo = tmp_path / "ex.png", tmp_path / "photo.png"
    Image.fromarray((stripes(48, 48) * 255).astype(np.uint8)).save(ex)
    Image.fromarray((stripes(41, 35, period=5) * 255).astype(np.uint8)).save(photo)
    run = lambda *a: CliRunner().invoke(cli, [str(x) for x in a])
    res = run("train", "--method", "stylize", "--style", ex, "--content", photo, "--out",
              tmp_path / "s", "--iters", 1, "--patch", 32, "--batch", 2)
    assert res.exit_code == 0, res.output
    res = run("stylize", "--model", tmp_path / "s", "--content", photo, "--out", tmp_path / "o.png")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "o.png").size == (35, 41)
    res = run("stylize", "--model", tmp_path / "s", "--content", photo, "--stroke-scale", 1.5,
              "--out", tmp_path / "o2.png")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "o2.png").size == (35, 41)
    res = run("train", "--method", "stylize", ex, "--out", tmp_path / "x")
    assert res.exit_code == 1 and res.output.startswith("error:") and res.output.count("\n") == 1
    # a texnet model paints through generate like a PSGAN (its channels come from its maps)
    res = run("train", "--method", "texnet", ex, "--out", tmp_path / "t", "--iters", 1,
              "--patch", 32, "--batch", 2)
    assert res.exit_code == 0, res.output
    res = run("generate", "--model", tmp_path / "t", "--size", 64, "--out", tmp_path / "t.png")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "t.png").size == (64, 64)
    # a stylisation model paints content, not noise: generate refuses it in one line
    res = run("generate", "--model", tmp_path / "s", "--size", 64, "--out", tmp_path / "g.png")
    assert res.exit_code == 1 and "texgen stylize" in res.output and not (tmp_path / "g.png").exists()


def test_learning_rate_holds_then_falls_to_lr_end():
    from texgen.train.common import learning_rate
    from texgen.train.texnet import TexNetTrainConfig
    cfg = TexNetTrainConfig(iters=100, lr=2e-3, lr_end=0.1)
    rates = [learning_rate(cfg, it) for it in range(100)]
    assert rates[0] == rates[50] == 2e-3
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[75] == pytest.approx(2e-3 * 0.55) and rates[99] == pytest.approx(2e-4, rel=0.01)
    assert learning_rate(TexNetTrainConfig(iters=100, lr=1e-3, lr_end=1.0), 99) == 1e-3


def test_fixed_batchnorm_step_keeps_the_statistics_it_paints_with():
    from texgen.train.descriptor import DescriptorLoss
    from texgen.train.texnet import TexNetTrainConfig, step
    G = ready(tiny())
    loss_fn = DescriptorLoss([stripes(48, 48)])
    opt = torch.optim.Adam(G.parameters(), 1e-3)
    z = torch.from_numpy(sample_noise(G.cfg.layout, 12, 12, seed=1, batch=2))
    bn = next(m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    step(G, loss_fn, opt, z, None, TexNetTrainConfig(), fixed_bn=True)
    assert torch.equal(bn.running_mean, before)            # normalised with them, not updated
    step(G, loss_fn, opt, z, None, TexNetTrainConfig())
    assert not torch.equal(bn.running_mean, before)        # the control: batch statistics move them


def test_diversity_term_pairs_a_batch_of_one_with_a_partner():
    """Improved Texture Networks' diversity term compares samples of a batch; the fast
    preset's batch is one, so the step is given a partner painted from other noise (before,
    --diversity did nothing there)."""
    from texgen.train.descriptor import DescriptorLoss
    G = ready(tiny())
    loss_fn, cfg = DescriptorLoss([stripes(48, 48)]), TexNetTrainConfig(diversity=1.0)
    opt = torch.optim.SGD(G.parameters(), 0.0)            # the step must not move the net
    z = [torch.from_numpy(sample_noise(G.cfg.layout, 12, 12, seed=s, batch=1)) for s in (1, 2)]
    assert step(G, loss_fn, opt, z[0], None, cfg)[1]["div"] == 0          # alone: nothing
    assert step(G, loss_fn, opt, z[0], None, cfg, partner=z[1])[1]["div"] < -1e-3
    assert abs(step(G, loss_fn, opt, z[0], None, cfg, partner=z[0])[1]["div"]) < 1e-6
    both = torch.cat(z)                                   # a batch of two: its own pairs
    assert step(G, loss_fn, opt, both, None, cfg)[1]["div"] < -1e-3


@pytest.mark.parametrize("weight", [0.1, 0.0], ids=["diversity", "none"])
def test_stylisation_at_a_batch_of_one_pairs_the_content_with_other_noise(tmp_path, monkeypatch,
                                                                          weight):
    """A stylisation network's diversity term at a batch of one (the fast preset's) gets a
    partner too: the same content crop under other noise (before, it got none, and the term
    --diversity asked for was 0 at every step); with no term, no partner."""
    import texgen.train.texnet as tt
    seen, real_step = [], tt.step

    def spy(G, loss_fn, opt, z, content, cfg, **k):
        seen.append((z, k["partner"]))
        return real_step(G, loss_fn, opt, z, content, cfg, **k)
    monkeypatch.setattr(tt, "step", spy)
    cfg = TexNetTrainConfig(**{**TRAIN, "iters": 2, "batch": 1, "diversity": weight})
    rng = np.random.default_rng(0)
    photo = [rng.random((40, 40, 3)).astype(np.float32)]
    train(photo, tmp_path / "s", tiny(content=3), cfg, content=photo, log=lambda *_: None)
    assert len(seen) == 2
    for z, partner in seen:
        if not weight:
            assert partner is None
            continue
        packed = tiny(3).layout.channels - 3 * tiny(3).scale ** 2   # the content, per cell
        assert partner.shape == z.shape
        assert torch.equal(partner[:, packed:], z[:, packed:])           # the same content
        assert (partner[:, :packed] - z[:, :packed]).abs().mean() > 0.1  # other noise


def test_fine_and_checker_caps_are_terms_of_the_step_only_when_weighted():
    """texnet's fine and checker caps (`--fine-weight`, `--checker-weight`) are terms of its
    step when weighted, and only then; the fast preset caps the checker."""
    from texgen.train.descriptor import DescriptorLoss, SpectrumLoss
    ex = stripes(48, 48)
    G = ready(tiny())
    loss_fn, spectrum = DescriptorLoss([ex]), SpectrumLoss([ex], 48)
    z = torch.from_numpy(sample_noise(G.cfg.layout, 12, 12, seed=1, batch=2))
    opt = torch.optim.Adam(G.parameters(), 1e-3)
    _, terms = step(G, loss_fn, opt, z, None, TexNetTrainConfig(fine_weight=1.0), spectrum=spectrum)
    assert terms["fine"] > 0                   # an untrained net paints speckle the stripes lack
    _, terms = step(G, loss_fn, opt, z, None, TexNetTrainConfig(checker_weight=1.0),
                    spectrum=spectrum)
    assert terms["checker"] > 0 and "fine" not in terms
    _, terms = step(G, loss_fn, opt, z, None, TexNetTrainConfig(), spectrum=spectrum)
    assert "fine" not in terms and "checker" not in terms
    assert PRESETS["fast"].checker_weight > 0 and PRESETS["fast"].fine_weight == 0


def test_the_chroma_cap_is_on_from_chroma_from_and_idle_on_a_grey_photo(tmp_path, monkeypatch):
    """chroma_from: the cap joins the step at that fraction of the run (the fast preset: half
    way, once the texture has formed); on a grey photo the run is bit for bit the run
    without the cap (so the benchmark keeps such rows: quality._inert)."""
    import texgen.train.texnet as tt
    weights_seen, real_step = [], tt.step

    def spy(G, loss_fn, opt, z, content, cfg, **k):
        weights_seen.append(cfg.chroma_weight)
        return real_step(G, loss_fn, opt, z, content, cfg, **k)
    monkeypatch.setattr(tt, "step", spy)
    cfg = TexNetTrainConfig(**TRAIN, chroma_weight=0.1, chroma_from=0.5)
    said = []
    train([stripes(40, 40)], tmp_path / "c", tiny(), cfg, log=said.append)
    assert weights_seen == [0.0, 0.0, 0.1, 0.1]
    assert "chroma cap 0.1 after 2 iterations" in said[0]
    assert PRESETS["fast"].chroma_weight > 0 and PRESETS["fast"].chroma_from == 0.5
    monkeypatch.setattr(tt, "step", real_step)

    def same_with_and_without(photo, name):
        """Whether the run with the cap on from the start ends with the weights of the run
        without it."""
        runs = [weights(train([photo], tmp_path / f"{name}_{w}", tiny(), replace(
            cfg, chroma_weight=w, chroma_from=0.0), log=lambda *_: None)) for w in (0.1, 0.0)]
        return all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert same_with_and_without(stripes(40, 40).mean(axis=2, keepdims=True).repeat(3, axis=2), "grey")
    assert not same_with_and_without(stripes(40, 40), "colour")   # a colour photo: it acts


def test_a_run_on_a_deadline_is_the_run_of_the_length_it_sets(tmp_path, monkeypatch):
    """texgen train --minutes: after a twentieth of its steps (in the first half, before the
    checkpoint and batch norm's fixing) the run sets its length from its pace; the result is
    the run that had that length from the start, bit for bit."""
    from texgen.train import speed
    img = [stripes(40, 40)]
    said = []
    # re-planned after 10 steps, to 24 (iterations_by gives 2 x 10 + 2 at least: with fewer,
    # steps already taken at the full rate would fall in the decay, and the runs differ)
    monkeypatch.setattr(speed, "iterations_by", lambda deadline, done, pace: 24)
    cfg = TexNetTrainConfig(**{**TRAIN, "iters": 200})
    planned = train(img, tmp_path / "a", tiny(), cfg, log=said.append, deadline=0.0)
    straight = train(img, tmp_path / "b", tiny(), TexNetTrainConfig(**{**TRAIN, "iters": 24}),
                     log=lambda *_: None)
    a, b = weights(planned), weights(straight)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = checkpoint.load_model(planned)[1]
    assert meta["iteration"] == 24 and meta["train"]["iters"] == 24   # what --resume reads
    assert any("24 iterations in the time left" in line for line in said)
