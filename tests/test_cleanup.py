"""train/cleanup.py: after training, the output kernel's projections are scored on the
exemplar and one is kept only within tolerance of the trained kernel's distance."""

import copy

import numpy as np
import pytest
import torch

from conftest import stripes, tiny_config
from texgen import checkpoint
from texgen.models.psgan import Generator
from texgen.paint import load_generator
from texgen.train import cleanup, common
from texgen.models.texnet import TexNetConfig
from texgen.train import psgan as train_psgan
from texgen.train import texnet as train_texnet
from texgen.train.psgan import TrainConfig
from texgen.train.texnet import TexNetTrainConfig

COLOUR = slice(0, 3)


@pytest.fixture
def small(monkeypatch):
    """Samples and crops a tiny generator paints in a moment (the arithmetic is the same)."""
    monkeypatch.setattr(cleanup, "SIZE", 96)


@torch.no_grad()
def test_a_projection_is_kept_only_within_tolerance_and_then_the_lowest(tiny_G, small):
    G = copy.deepcopy(tiny_G)
    layer = cleanup.output_layer(G)
    trained = layer.weight.clone()
    ex = stripes(96, 96)
    rec = cleanup.clean_output(G, ex, tolerance=-0.5, log=lambda m: None)   # none can be
    assert rec["kept"] == "as trained" and torch.equal(layer.weight, trained)
    assert set(rec["scores"]) == {"as trained", *cleanup.CANDIDATES}
    rec = cleanup.clean_output(G, ex, tolerance=np.inf, log=lambda m: None)  # all are
    d = {name: s["texture_distance"] for name, s in rec["scores"].items()}
    assert rec["kept"] == min(cleanup.CANDIDATES, key=d.get)
    assert torch.equal(layer.weight, cleanup.CANDIDATES[rec["kept"]](trained, COLOUR))
    # what it scored is what the kept kernel paints: scored again, as trained now, the same
    again = cleanup.clean_output(G, ex, tolerance=-0.5, log=lambda m: None)
    assert again["scores"]["as trained"]["texture_distance"] == pytest.approx(d[rec["kept"]],
                                                                              abs=1e-5)


def grey(img: np.ndarray) -> np.ndarray:
    """img with no colour: the clean-up's colour step has nothing to compare with and skips."""
    return np.repeat(img.mean(-1, keepdims=True), 3, -1)


@torch.no_grad()
def test_fine_detail_is_softened_in_steps_up_to_the_first_that_comes_into_the_band(tiny_G, small):
    G = copy.deepcopy(tiny_G)
    layer = cleanup.output_layer(G)
    trained = layer.weight.clone()
    ex, quiet = grey(stripes(96, 96)), {"log": lambda m: None}   # tiny_G: over 1.2x its fine detail

    def clean(tolerance, band):
        layer.weight.copy_(trained)
        return cleanup.clean_output(G, ex, tolerance, fine_band=band, **quiet)

    plain = clean(np.inf, 0.0)
    assert plain["steps"] == {}                                   # no band: never touched
    kept = cleanup.CANDIDATES[plain["kept"]](trained, COLOUR)
    assert plain["scores"][plain["kept"]]["fine_energy"] > 1.2
    assert plain["scores"][plain["kept"]]["chroma_energy"] is None
    # a band no step comes into: every step is tried, and the last one within tolerance kept
    step = clean(np.inf, 1e-3)["steps"]["fine detail softened"]
    assert step["amount"] == cleanup.SOFTEN[-1]
    assert list(step["tried"]) == [str(a) for a in cleanup.SOFTEN]
    assert torch.equal(layer.weight, cleanup.fine_soft_kernel(kept, cleanup.SOFTEN[-1]))
    fine = [step["tried"][str(a)]["fine_energy"] for a in cleanup.SOFTEN]
    assert all(a > b for a, b in zip(fine, fine[1:]))
    assert fine[0] < plain["scores"][plain["kept"]]["fine_energy"]
    # a band the third step comes into: it stops there
    step = clean(np.inf, (fine[1] + fine[2]) / 2 - 1)["steps"]["fine detail softened"]
    assert step["amount"] == cleanup.SOFTEN[2] and len(step["tried"]) == 3
    # a band the kept kernel is in already: nothing tried
    assert clean(np.inf, 10.0)["steps"] == {} and torch.equal(layer.weight, kept)
    # a step over the tolerance stops it before that step: here the first, so none is kept
    rec = clean(-0.5, 1e-3)
    step = rec["steps"]["fine detail softened"]
    assert rec["kept"] == "as trained" and step["amount"] == 0 and len(step["tried"]) == 1
    assert torch.equal(layer.weight, trained)


@torch.no_grad()
def test_blurred_fine_detail_is_sharpened(tiny_G, small):
    G = copy.deepcopy(tiny_G)
    layer = cleanup.output_layer(G)
    trained = layer.weight.clone()
    noise = grey(np.random.default_rng(0).random((96, 96, 3), dtype=np.float32))  # all detail
    rec = cleanup.clean_output(G, noise, np.inf, fine_band=0.2, log=lambda m: None)
    assert rec["scores"][rec["kept"]]["fine_energy"] < 0.8
    assert list(rec["steps"]) == ["fine detail sharpened"]
    # far under the band: every step, each with more fine detail than the one before
    step = rec["steps"]["fine detail sharpened"]
    assert step["amount"] == cleanup.SHARPEN[-1]
    fine = [step["tried"][str(b)]["fine_energy"] for b in cleanup.SHARPEN]
    assert all(a < b for a, b in zip(fine, fine[1:]))
    kept = cleanup.CANDIDATES[rec["kept"]](trained, COLOUR)
    assert torch.equal(layer.weight, cleanup.sharpened(kept, cleanup.SHARPEN[-1]))


@torch.no_grad()
def test_colour_grain_is_softened_and_brightness_left_as_it_is(tiny_G, small):
    G = copy.deepcopy(tiny_G)
    layer = cleanup.output_layer(G)
    trained = layer.weight.clone()
    ex = grey(stripes(96, 96))                  # and a colour that changes only slowly
    ex[..., 0] = np.clip(ex[..., 0] + 0.1 * np.sin(np.arange(96) * 2 * np.pi / 96), 0, 1)
    rec = cleanup.clean_output(G, ex, np.inf, fine_band=1e-3, log=lambda m: None)
    assert rec["scores"][rec["kept"]]["chroma_energy"] > 1.2
    fine, colour = rec["steps"]["fine detail softened"], rec["steps"]["colour grain softened"]
    # after the brightness's step, from where it left off; every step within tolerance
    assert colour["amount"] == cleanup.CHROMA_SOFTEN[-1]
    tried = [colour["tried"][str(a)] for a in cleanup.CHROMA_SOFTEN]
    assert all(a["chroma_energy"] > b["chroma_energy"] for a, b in zip(tried, tried[1:]))
    # the brightness is the colour channels' own: its fine detail is where the first step left it
    left = fine["tried"][str(fine["amount"])]["fine_energy"]
    assert all(t["fine_energy"] == pytest.approx(left, rel=1e-3) for t in tried)
    kept = cleanup.CANDIDATES[rec["kept"]](trained, COLOUR)
    expected = cleanup.chroma_soft_kernel(cleanup.fine_soft_kernel(kept, fine["amount"]), COLOUR,
                                          cleanup.CHROMA_SOFTEN[-1])
    assert torch.allclose(layer.weight, expected, atol=1e-6)


def test_a_derived_output_layer_is_left_as_it_is(chroma_G, small):
    G = copy.deepcopy(chroma_G)
    rec = cleanup.clean_output(G, stripes(96, 96), tolerance=np.inf, log=lambda m: None)
    assert rec["kept"] == "as trained"
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(),
                                                  chroma_G.state_dict().values()))


@pytest.mark.parametrize("fine_band", [0.0, 1e-3])
def test_training_ends_with_the_clean_up_in_the_saved_model(tmp_path, small, fine_band):
    cfg = TrainConfig(iters=1, batch=2, patch=32, ckpt_every=1, preview_every=1,
                      clean_within=np.inf, clean_fine=fine_band)
    logged = []
    out = train_psgan.train([stripes(96, 96)], tmp_path / "m", tiny_config(), cfg,
                            log=logged.append)
    tensors, meta = checkpoint.load_model(out)
    kept = meta["cleanup"]["kept"]
    assert kept in cleanup.CANDIDATES and any(f"kept {kept}" in m for m in logged)
    # the model paints the projection of the trained kernel, which training keeps as it was
    key = f"net.{len(Generator(tiny_config()).net) - 2}.weight"      # the output layer's
    trained = checkpoint.load_model(out / checkpoint.TRAIN_FILE)[0]["G." + key]
    kernel = cleanup.CANDIDATES[kept](trained, COLOUR)
    steps = meta["cleanup"]["steps"]
    if fine_band:       # and took its fine detail toward the photo's, in the order it does
        for what, step in (("fine detail softened", cleanup.fine_soft_kernel),
                           ("fine detail sharpened", cleanup.sharpened),
                           ("colour grain softened",
                            lambda w, a: cleanup.chroma_soft_kernel(w, COLOUR, a))):
            if what in steps:
                assert steps[what]["amount"] == float(list(steps[what]["tried"])[-1])
                kernel = step(kernel, steps[what]["amount"])
        assert steps
    else:
        assert steps == {}
    assert torch.allclose(tensors[key], kernel, atol=1e-6)
    assert not torch.allclose(tensors[key], trained)


def test_clean_within_on_the_command_line_reaches_training(tmp_path, small, monkeypatch):
    from click.testing import CliRunner
    from texgen.cli import main
    from texgen.runtime.imageio import save_image
    monkeypatch.setitem(train_psgan.PRESETS, "fast", (tiny_config(), TrainConfig(
        iters=1, batch=2, patch=32, ckpt_every=1, preview_every=1)))      # no clean-up
    save_image(tmp_path / "stripes.png", stripes(96, 96))
    args = [str(tmp_path / "stripes.png"), "--method", "psgan", "--iters", "1", "--patch", "32"]
    for within, out in ((None, "plain"), ("1000", "cleaned")):
        res = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / out),
                                        *(("--clean-within", within) if within else ())])
        assert res.exit_code == 0, res.output
    assert "cleanup" not in checkpoint.load_model(tmp_path / "plain")[1]
    meta = checkpoint.load_model(tmp_path / "cleaned")[1]
    assert meta["train"]["clean_within"] == 1000 and meta["cleanup"]["kept"] in cleanup.CANDIDATES
    res = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / "bad"),
                                    "--clean-within", "-1"])
    assert res.exit_code != 0 and "clean-within" in res.output.lower()


# ----------------------------------------------------------------------------- the pick

def _train_with_pick(out, scores, images=None, log=None, method="psgan", content=None, **kw):
    """A tiny run of 4 iterations (PSGAN's, or texnet's: method; content: photos for a
    stylisation net) whose last 3 checkpoints are the pick's candidates; each candidate's
    texture_distance is the next of `scores` (in the order of iterations), and the weights
    every checkpoint painted with are returned by iteration."""
    weights = {}

    class Scripted:                 # the judge, with set scores (the real one: the next test)
        def __init__(self, exemplar, maps):
            self.left = list(scores)

        def __call__(self, G):
            return {"texture_distance": self.left.pop(0), "period_error": None}

    settings = {**dict(iters=4, batch=2, patch=32, ckpt_every=1, preview_every=1,
                       pick_last=3, pick_every=1), **kw}
    if method == "psgan":
        trainer, model_cfg, cfg, extra = train_psgan.train, tiny_config(), TrainConfig(**settings), {}
    else:
        trainer, cfg = train_texnet.train, TexNetTrainConfig(**settings)
        model_cfg = TexNetConfig(levels=3, noise=2, width=4, content=3 if content else 0)
        extra = {"content": content}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cleanup, "Judge", Scripted)
        trainer(images or [stripes(64, 64)], out, model_cfg, cfg,
                log=(log if log is not None else []).append,
                on_save=lambda it, f: weights.update({it: checkpoint.load_model(f)[0]}), **extra)
    return weights


METHODS = pytest.mark.parametrize("method", ["psgan", "texnet"])


@METHODS
def test_training_paints_with_the_best_of_its_last_checkpoints(tmp_path, method):
    logged = []
    # checkpoints every 100 iterations: the pick's own iterations are saved all the same
    weights = _train_with_pick(tmp_path / "m", [0.3, 0.1, 0.2], log=logged, ckpt_every=100,
                               method=method)
    assert sorted(weights) == [2, 3, 4]
    tensors, meta = checkpoint.load_model(tmp_path / "m")
    assert all(torch.equal(tensors[k], weights[3][k]) for k in tensors)
    assert not all(torch.equal(weights[3][k], weights[4][k]) for k in tensors)
    # the metadata says how far training went, and what paints and why
    assert meta["iteration"] == 4 and meta["painted"]["iteration"] == 3
    assert meta["picked"]["iteration"] == 3
    assert {it: s["texture_distance"] for it, s in meta["picked"]["scores"].items()} == \
        {"2": 0.3, "3": 0.1, "4": 0.2}
    assert any("iteration 3's weights" in m for m in logged)
    assert not (tmp_path / "m" / cleanup.PICKS).exists()
    # the last checkpoint paints where it scores best
    weights = _train_with_pick(tmp_path / "n", [0.3, 0.2, 0.1], method=method)
    tensors, meta = checkpoint.load_model(tmp_path / "n")
    assert all(torch.equal(tensors[k], weights[4][k]) for k in tensors) and meta["picked"]["iteration"] == 4


@METHODS
def test_a_fresh_run_picks_only_among_its_own_checkpoints(tmp_path, method):
    stale = cleanup.candidate_file(tmp_path / "m", 999)
    stale.parent.mkdir(parents=True)
    _train_with_pick(tmp_path / "x", [1.0, 1.0, 1.0], method=method)   # any model file will do
    stale.write_bytes((tmp_path / "x" / checkpoint.MODEL_FILE).read_bytes())
    _train_with_pick(tmp_path / "m", [0.3, 0.2, 0.1, 0.0], method=method)  # 0.0: the stale one's
    assert checkpoint.load_model(tmp_path / "m")[1]["picked"]["iteration"] == 4


@METHODS
def test_a_manifold_keeps_its_last_checkpoint(tmp_path, method):
    weights = _train_with_pick(tmp_path / "m", [0.1, 0.2, 0.3], method=method,
                               images=[stripes(64, 64), stripes(64, 64, period=5.0)])
    tensors, meta = checkpoint.load_model(tmp_path / "m")
    assert all(torch.equal(tensors[k], weights[4][k]) for k in tensors) and "picked" not in meta
    assert not (tmp_path / "m" / cleanup.PICKS).exists()


def test_a_stylisation_net_keeps_its_last_checkpoint(tmp_path):
    """The judge scores a texture's samples; a stylisation net paints content, so it is not
    picked (texnet's presets ask for the pick, and stylisation trains with them)."""
    weights = _train_with_pick(tmp_path / "m", [0.1, 0.2, 0.3], method="texnet",
                               content=[stripes(48, 40, period=5.0)])
    tensors, meta = checkpoint.load_model(tmp_path / "m")
    assert all(torch.equal(tensors[k], weights[4][k]) for k in tensors) and "picked" not in meta
    assert meta["train"]["pick_last"] == 0 and not (tmp_path / "m" / cleanup.PICKS).exists()
    assert train_texnet.PRESETS["fast"].pick_last == 3


def test_the_pick_scores_as_the_clean_up_does(tmp_path, tiny_G, small):
    """The real judge: each candidate's recorded score is the clean-up's texture_distance of
    what it paints, and the lowest paints."""
    folder, ex = tmp_path / "m", stripes(96, 96)
    info = {"config": tiny_G.cfg.to_dict(), "train": {}, "provenance": {}}
    files, Gs = [], []
    for it in (1, 2, 3):
        G = copy.deepcopy(tiny_G)
        with torch.no_grad():
            cleanup.output_layer(G).weight.mul_(0.5 * it)
        checkpoint.save_model(folder, G, {**info, "iteration": it})
        files.append(tmp_path / f"c{it}.safetensors")
        files[-1].write_bytes((folder / checkpoint.MODEL_FILE).read_bytes())
        Gs.append(G)
    judge = cleanup.pick_model(folder, [ex], log=lambda m: None, candidates=files)
    expected = [cleanup.Judge(ex, tiny_G.cfg.maps)(G)["texture_distance"] for G in Gs]
    meta = checkpoint.load_model(folder)[1]
    assert [meta["picked"]["scores"][str(i)]["texture_distance"] for i in (1, 2, 3)] == \
        pytest.approx(expected, abs=1e-5)
    best = int(np.argmin(expected))
    assert meta["picked"]["iteration"] == best + 1 and meta["iteration"] == 3
    assert judge(load_generator(folder)[0])["texture_distance"] == pytest.approx(expected[best], abs=1e-5)
    assert all(f.exists() for f in files)          # the given candidates are not removed


def test_the_pick_keeps_the_period_and_switches_only_past_its_margin():
    def scores(*rows):
        return {it: {"texture_distance": d, "period_error": p} for it, d, p in rows}
    # wall_brick01's: 700 scores between the others but paints the courses off the period
    swung = scores((600, 0.1186, 0.0245), (650, 0.1162, 0.0363), (700, 0.1171, 0.0763))
    assert cleanup.choose(swung, margin=0.0) == 650 and cleanup.choose(swung, margin=0.02) == 650
    # no clear period (None): texture_distance alone, and the last unless beaten by the margin
    flat = scores((600, 0.0975, None), (650, 0.1000, None), (700, 0.0990, None))
    assert cleanup.choose(flat, margin=0.0) == 600 and cleanup.choose(flat, margin=0.02) == 700
    assert cleanup.choose(scores((600, 0.0900, None), (700, 0.0990, None)), margin=0.02) == 600
    # a period no worse than the best's by more than the slack competes on texture alone
    near = scores((600, 0.0900, 0.020), (700, 0.0990, 0.020 + cleanup.PERIOD_SLACK / 2))
    assert cleanup.choose(near, margin=0.02) == 600


@METHODS
def test_a_run_on_a_time_budget_keeps_time_for_its_checkpoints_and_end(tmp_path, small, monkeypatch,
                                                                      method):
    """texgen train --minutes: the re-plan times a checkpoint's batch-norm measure and a judge
    score, keeps that time for the checkpoints left and the pick and (PSGAN's) clean-up, and
    its judge is the one the pick and the clean-up use."""
    import time
    from dataclasses import replace
    built, reserves = [], []

    class Counted(cleanup.Judge):
        def __init__(self, *args):
            built.append(args)
            super().__init__(*args)

    def replanned(cfg, deadline, done, pace, log, reserve=None):
        reserves.append((done, reserve))
        return replace(cfg, iters=24)
    trainer = train_psgan if method == "psgan" else train_texnet
    monkeypatch.setattr(cleanup, "Judge", Counted)
    monkeypatch.setattr(common, "replanned", replanned)
    timed = cleanup.ending_cost         # the end's scores, timed at the re-plan: say 1000 s
    monkeypatch.setattr(cleanup, "ending_cost", lambda *a: (timed(*a)[0], 1000.0))
    settings = dict(iters=200, batch=2, patch=32, ckpt_every=10, preview_every=10, pick_last=3,
                    pick_every=2)
    if method == "psgan":
        model_cfg, cfg = tiny_config(), TrainConfig(**settings, clean_within=0.03)
    else:
        model_cfg, cfg = TexNetConfig(levels=3, noise=2, width=4), TexNetTrainConfig(**settings)
    out = trainer.train([stripes(96, 96)], tmp_path / "m", model_cfg, cfg,
                        log=lambda *a: None, deadline=time.monotonic() + 1e6)
    (done, reserve), = reserves
    assert done == 9 and reserve(44) > reserve(24) > 1000  # a longer run saves more often
    assert len(built) == 1                                 # built at the re-plan, used at the end
    meta = checkpoint.load_model(out)[1]
    assert meta["iteration"] == 24 and meta["picked"]["iteration"] in (20, 22, 24)
    assert ("cleanup" in meta) == (method == "psgan")


def test_the_pick_considers_the_last_steps_of_pick_every_counted_from_the_end():
    cfg = TrainConfig(pick_last=3, pick_every=50)
    assert [it for it in range(701) if cleanup.is_candidate(it, 700, cfg)] == [600, 650, 700]
    # a run on a time budget ends where its pace says: counted from that end
    assert [it for it in range(603) if cleanup.is_candidate(it, 602, cfg)] == [502, 552, 602]
    assert not any(cleanup.is_candidate(it, 700, TrainConfig(pick_last=1)) for it in range(701))


def test_a_budget_run_that_builds_its_judge_early_is_the_run_of_its_length(tmp_path, small,
                                                                           monkeypatch):
    """The re-plan's timing (a checkpoint's batch-norm measure, a judge built and scoring)
    draws from no stream training uses: the run, its pick and its clean-up are bit for bit
    those of a run that had the length from the start."""
    from dataclasses import replace
    from texgen.train import speed
    monkeypatch.setattr(speed, "iterations_by", lambda deadline, done, pace: 24)
    cfg = TrainConfig(iters=200, batch=2, patch=32, ckpt_every=1000, preview_every=1000,
                      pick_last=3, pick_every=2, clean_within=0.03)
    img, quiet = [stripes(96, 96)], {"log": lambda *a: None}
    train_psgan.train(img, tmp_path / "a", tiny_config(), cfg, deadline=0.0, **quiet)
    train_psgan.train(img, tmp_path / "b", tiny_config(), replace(cfg, iters=24), **quiet)
    for name in (checkpoint.TRAIN_FILE, checkpoint.MODEL_FILE):
        a = checkpoint.load_model(tmp_path / "a" / name)
        b = checkpoint.load_model(tmp_path / "b" / name)
        assert a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1]["picked"] == b[1]["picked"] and a[1]["cleanup"] == b[1]["cleanup"]
