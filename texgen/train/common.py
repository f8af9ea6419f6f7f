"""What every training loop shares: the loop itself, whole checkpoints, --resume's checks, the
progress bar and the preview images."""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from texgen.errors import TexgenError

from texgen.runtime.imageio import save_image


def start_point(out, resume: bool, seed: int, G, D, opt_g, opt_d, log=print, extra=None):
    """(numpy stream, first iteration, training metadata): fresh from the seed, or all that
    --resume restores (weights, optimiser moments, RNG states, `extra` modules;
    checkpoint.load_training)."""
    if not resume:
        return np.random.default_rng(seed), 0, {}
    from texgen import checkpoint
    rng, meta = checkpoint.load_training(out, G, D, opt_g, opt_d, extra)
    log(f"resuming {out} at iteration {meta['iteration']}")
    return rng, meta["iteration"], meta


def run_iterations(step, start: int, iters: int, save, preview, ckpt_every: int,
                   preview_every: int, out, log=print, rng: np.random.Generator | None = None,
                   replan=None, also_save=None) -> None:
    """The loop every training method shares.

    step(it) -> (ok, losses): one update; ok False when it was skipped as non-finite, losses
    shown on the progress bar. save(done) writes a checkpoint every ckpt_every iterations and
    at the end, preview(done) a preview every preview_every between them. Twenty skipped steps
    in a row stop training with a TexgenError; Ctrl-C (KeyboardInterrupt) saves the
    iterations done, so --resume continues from there, and re-raises. rng: the training
    stream step draws from; a step cut short by Ctrl-C is rolled back (its draws undone) before
    that save, so the resumed run draws what an uninterrupted one would have.
    Every save runs with Ctrl-C and SIGTERM held (uninterruptible): a second Ctrl-C waits for
    the checkpoint to be whole (weights, optimiser state and iteration, in both files) and
    then stops the run. replan(done, seconds a step) -> iterations: a run on a time budget
    (texgen train --minutes) sets its length once, at replan_point, from its own pace.
    also_save(done) -> bool: iterations that save a checkpoint besides those.
    """
    bar = Progress(total=iters, initial=start, desc=f"train {Path(out).name}")
    done, saved, bad = start, start, 0
    at = replan_point(iters, ckpt_every) if replan is not None and start == 0 else None
    it = start
    try:
        while it < iters:
            drawn = rng.bit_generator.state if rng is not None else None
            try:
                ok, losses = step(it)
            except KeyboardInterrupt:
                if drawn is not None:
                    rng.bit_generator.state = drawn
                raise
            bad = 0 if ok else bad + 1
            if bad > 20:
                raise TexgenError("training diverged (losses are NaN); resume from the last "
                                  "checkpoint with a lower --lr")
            bar.update(1, **losses)
            done = it + 1
            if done == 1:
                first = time.monotonic()            # the first step warms up: not timed
            if done == at:
                iters = replan(done, (time.monotonic() - first) / (done - 1))
                bar.resize(iters)
            if done % ckpt_every == 0 or done == iters or (also_save and also_save(done)):
                with uninterruptible():
                    save(done)
                    saved = done
            elif done % preview_every == 0:
                preview(done)
            it += 1
    except BaseException as e:
        bar.close()                         # before the message: it starts a fresh line
        if not isinstance(e, KeyboardInterrupt):
            raise
        if saved == done:                   # (a Ctrl-C held through the save just made)
            log(f"\ninterrupted: iteration {done} is saved in {out} (resume with --resume)"
                if done else "\ninterrupted before the first iteration: nothing to save")
        else:
            log(f"\ninterrupted: saving iteration {done} to {out} (resume with --resume)")
            with uninterruptible():
                save(done)
        raise
    bar.close()


@contextlib.contextmanager
def uninterruptible():
    """Hold SIGINT (Ctrl-C) and SIGTERM until the block ends, then deliver the first one that
    came: a checkpoint is written whole, or not at all (the files themselves are atomic).
    Only the main thread receives signals; elsewhere the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:             # None: set outside Python, cannot be restored
            old[sig] = signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if held:
        signal.raise_signal(held[0])        # now handled as it would have been: Ctrl-C raises


def replan_point(iters: int, ckpt_every: int) -> int | None:
    """The step after which a run on a time budget times itself and sets its iterations: a
    twentieth of the run (10 steps at least), before its first checkpoint and inside the
    first half, where the learning rate is constant (learning_rate) and texnet's batch norm
    not yet fixed (bn_fixed >= 0.5): the run is then exactly the one it would have been had
    it started with the new count. None: too short to time."""
    k = min(max(10, iters // 20), ckpt_every - 1, iters // 2 - 1)
    return k if k >= 5 else None


def replanned(cfg, deadline: float, done: int, pace: float, log=print, reserve=None):
    """A training config (either method's) with the iterations left to its deadline.
    reserve(iters) -> the seconds a run of that length needs besides its steps (its
    checkpoints, and what follows the last: the pick and the clean-up), kept out of the
    time left; counted for the length before it is kept out, so it errs long."""
    from dataclasses import replace
    from texgen.train import speed
    iters = speed.iterations_by(deadline, done, pace)
    kept = reserve(iters) if reserve is not None else 0.0
    if kept:
        iters = speed.iterations_by(deadline - kept, done, pace)
    log(f"\n{pace:.2f} s an iteration so far: {iters} iterations in the time left"
        + (f", {kept:.0f} s of it kept for checkpoints and the end" if kept else ""))
    return replace(cfg, iters=iters)


def saves_left(done: int, iters: int, ckpt_every: int) -> int:
    """The checkpoints run_iterations saves after `done` in a run of `iters` (the last one
    included), the also_save ones left out."""
    return iters // ckpt_every - done // ckpt_every + (iters % ckpt_every > 0)


def learning_rate(cfg, it: int) -> float:
    """cfg.lr for the first half of cfg.iters, then a cosine down to cfg.lr * cfg.lr_end (a
    training config of either method). A batch's loss is noisy; the end is calm."""
    half = cfg.iters / 2
    t = min(1.0, max(0.0, (it - half) / max(half, 1)))
    return cfg.lr * (cfg.lr_end + (1 - cfg.lr_end) * 0.5 * (1 + math.cos(math.pi * t)))


def choose_method(images: list[np.ndarray]) -> tuple[str, str]:
    """(method, why) for `texgen train --method auto`, the default: texnet for one photo with
    no clear period (spectrum.clear_periods: grass, gravel, concrete), psgan otherwise.

    On such photos, at the fast preset's budget, texnet paints closer to the photo than
    PSGAN, and without PSGAN's grid of 32 px noise cells (texture_distance over the photo's
    own, benchmarks/out/quality.md: grass_lush 1.20 against 3.63, gravel 1.44 against 2.15,
    grass 1.19 against 1.58, floor_se01 1.27 against 1.62, brick 0.72 against 1.45, desert002
    0.70 against 1.16, conc01 1.59 against 1.90). A lattice of tiles or courses needs
    PSGAN's learned waves to keep its period (texnet paints tiles as a maze of rectangles),
    and several photos make a PSGAN texture manifold."""
    from texgen.spectrum import clear_periods
    if len(images) > 1:
        return "psgan", f"{len(images)} images: a texture manifold"
    periods = clear_periods(images[0][..., :3])
    if len(periods):
        return "psgan", f"a clear period of {1 / np.hypot(*periods[0]):.0f} px"
    return "texnet", "no clear period in the photo"


def data_digest(images: list[np.ndarray]) -> str:
    """SHA-256 of training images as read (shapes and pixels): --resume compares it to tell
    the photo a run started with from another."""
    h = hashlib.sha256()
    for im in images:
        h.update(repr(im.shape).encode())
        h.update(np.ascontiguousarray(im, np.float32).tobytes())
    return h.hexdigest()


def check_resume(out, method: str | None, given: dict, preset: str | None,
                 licence: str | None, iters: int | None) -> dict:
    """What `--resume` continues, checked against what the user asked for this time; returns
    {"method", "preset", "iters", "provenance"} of the saved run, which the resumed one keeps.

    method, preset, licence, iters: as given (None: left out). given: the other settings
    given, by TrainConfig field name ("batch", "lr", ...; None: left out). A saved run is
    continued exactly or not at all: anything given that differs from it is a TexgenError
    naming it, and so is an --iters the run has already reached. The images are compared by
    check_same_data once they are read."""
    from texgen import checkpoint
    meta = checkpoint.training_info(out)
    saved = dict(meta.get("provenance") or {})
    kind = checkpoint.model_kind(meta)
    if method is not None and method != kind:
        raise TexgenError(f"{out} holds a {kind} model: resume it with --method {kind} (or "
                          f"leave --method out)")

    def differs(option: str, value, old) -> None:
        raise TexgenError(f"--resume continues {out} with its saved settings: {option} {value} "
                          f"differs from its {old} (leave it out)")
    train_cfg = meta.get("train") or {}
    for key, value in given.items():
        if value is not None and key in train_cfg and train_cfg[key] != value:
            differs("--" + key.replace("_", "-"), value, train_cfg[key])
    for key, value in (("preset", preset), ("licence", licence)):
        if value is not None and saved.get(key, value) != value:
            differs("--" + key, value, saved[key])
    done = int(meta.get("iteration", 0))
    target = iters or int(train_cfg.get("iters", 0))
    if target <= done:
        raise TexgenError(f"{out} is already at iteration {done}: pass --iters above {done} "
                          f"to train it further")
    return {"method": kind, "preset": saved.get("preset", "fast"), "iters": target,
            "provenance": saved}


def check_same_data(out, saved: dict, provenance: dict) -> None:
    """TexgenError unless this run's images (provenance: their names and data_digest) are the
    ones the saved run (its provenance) was trained on."""
    digest = saved.get("exemplar_sha256")
    names = ", ".join(saved.get("exemplars") or []) or "other images"
    if digest is not None and digest != provenance.get("exemplar_sha256"):
        raise TexgenError(f"{out} was trained on {names}: --resume needs the same images "
                          f"(these differ)")
    if digest is None and saved.get("exemplars") not in (None, provenance.get("exemplars")):
        raise TexgenError(f"{out} was trained on {names}: --resume needs the same images")


class Progress:
    """A tqdm bar (iterations, rate, ETA) whose postfix shows the latest losses."""

    def __init__(self, total: int, initial: int = 0, desc: str = "train"):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True,
                        smoothing=0.05)

    def update(self, n: int = 1, **losses):
        self.bar.update(n)
        if self.bar.n % 10 == 0 or self.bar.n == self.bar.total:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)

    def resize(self, total: int):
        """A new length for the bar (a run on a time budget sets its own)."""
        self.bar.total = total
        self.bar.refresh()

    def close(self):
        self.bar.close()


def _rgb(img: np.ndarray, maps=None) -> np.ndarray:
    """H x W x C (any C) -> H x W x 3 for viewing: the colour map of a stack whose channels
    hold `maps` (default: the colour first)."""
    from texgen.runtime.maps import map_slices
    colour = map_slices(maps).get("color") if maps else slice(0, 3)
    if colour is not None and img.shape[2] >= colour.stop:
        return img[..., colour]
    return np.repeat(img[..., :1], 3, axis=2)


def _thumb(img: np.ndarray, side: int, maps=None) -> np.ndarray:
    from PIL import Image
    im = Image.fromarray((np.clip(_rgb(img, maps), 0, 1) * 255).astype(np.uint8))
    im.thumbnail((side, side))
    return np.asarray(im, np.float32) / 255


def save_exemplar_thumb(path, images: list[np.ndarray], side: int = 256, maps=None) -> None:
    thumbs = [_thumb(im, side, maps) for im in images[:4]]
    h = max(t.shape[0] for t in thumbs)
    row = np.concatenate([np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0)), constant_values=1)
                          for t in thumbs], axis=1)
    save_image(path, row)


@torch.no_grad()
def paint_sample(G, cfg, side: int, seed: int = 0) -> np.ndarray:
    """C x side x side in [-1, 1]: what the runtime paints with G (cfg: its model config)."""
    from texgen.paint import torch_runner
    from texgen.runtime.canvas import synthesize
    return synthesize(torch_runner(G), cfg.layout, cfg.scale, G.margin, side, side, seed=seed)


@torch.no_grad()
def save_preview(path, G, images: list[np.ndarray], cfg, side: int = 256, seed: int = 0) -> None:
    """Exemplar | a side x side sample tiled 2 x 2 (seams would show as a cross in the middle)."""
    sample = paint_sample(G, cfg, side, seed)
    tiled = np.tile(_rgb(sample.transpose(1, 2, 0) * 0.5 + 0.5, cfg.maps), (2, 2, 1))
    ex = _thumb(images[0], 2 * side, cfg.maps)
    ex = np.pad(ex, ((0, 2 * side - ex.shape[0]), (0, 8), (0, 0)), constant_values=1)
    save_image(path, np.concatenate([ex, tiled], axis=1))
