"""What every training loop shares: the loop itself, the progress bar and the preview images."""

from __future__ import annotations

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
                   preview_every: int, out, log=print, rng: np.random.Generator | None = None) -> None:
    """The loop every training method shares.

    step(it) -> (ok, losses): one update; ok False when it was skipped as non-finite, losses
    shown on the progress bar. save(done) writes a checkpoint every ckpt_every iterations and
    at the end, preview(done) a preview every preview_every between them. Twenty skipped steps
    in a row stop training with a TexgenError; Ctrl-C (KeyboardInterrupt) saves the
    iterations done, so --resume continues from there, and re-raises. rng: the training
    stream step draws from; a step cut short by Ctrl-C is rolled back (its draws undone) before
    that save, so the resumed run draws what an uninterrupted one would have.
    """
    bar = Progress(total=iters, initial=start, desc=f"train {Path(out).name}")
    done, bad = start, 0
    try:
        for it in range(start, iters):
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
            if done % ckpt_every == 0 or done == iters:
                save(done)
            elif done % preview_every == 0:
                preview(done)
    except KeyboardInterrupt:
        bar.close()
        log(f"\ninterrupted: saving iteration {done} to {out} (resume with --resume)")
        save(done)
        raise
    bar.close()


class Progress:
    """A tqdm bar (iterations, rate, ETA) whose postfix shows the latest losses."""

    def __init__(self, total: int, initial: int = 0, desc: str = "train"):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True,
                        smoothing=0.05)

    def update(self, n: int = 1, **losses):
        self.bar.update(n)
        if self.bar.n % 10 == 0 or self.bar.n == self.bar.total:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)

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
def save_preview(path, G, images: list[np.ndarray], cfg, side: int = 256, seed: int = 0) -> None:
    """Exemplar | a side x side sample tiled 2 x 2 (seams would show as a cross in the middle)."""
    from texgen.paint import torch_runner
    from texgen.runtime.canvas import synthesize
    sample = synthesize(torch_runner(G), cfg.layout, cfg.scale, G.margin, side, side, seed=seed)
    tiled = np.tile(_rgb(sample.transpose(1, 2, 0) * 0.5 + 0.5, cfg.maps), (2, 2, 1))
    ex = _thumb(images[0], 2 * side, cfg.maps)
    ex = np.pad(ex, ((0, 2 * side - ex.shape[0]), (0, 8), (0, 0)), constant_values=1)
    save_image(path, np.concatenate([ex, tiled], axis=1))
