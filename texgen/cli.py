"""The texgen command line: thin click commands over the library; no logic of its own."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from texgen.errors import TexgenError


def _friendly(fn):
    """Turn TexgenError into one line on stderr and exit status 1; Ctrl-C into status 130."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TexgenError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


@click.group()
@click.version_option(package_name="texgen")
def main():
    """Learn seamless textures from photos and paint them at any size."""


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--method", type=click.Choice(["psgan", "sgan"]), default="psgan", show_default=True,
              help="sgan: no global and no periodic channels.")
@click.option("--preset", type=click.Choice(["fast", "full"]), default="fast", show_default=True,
              help="fast: ~15 min on a 2-core CPU; full: the official PSGAN sizes, for a GPU.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder.")
@click.option("--iters", type=int, help="Training iterations (default: the preset's).")
@click.option("--patch", type=int, help="Training patch in px, a multiple of 32.")
@click.option("--batch", type=int)
@click.option("--lr", type=float)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the training saved in --out.")
@click.option("--force", is_flag=True, help="Overwrite a model already in --out.")
@click.option("--licence", default="as the exemplar images", show_default=True,
              help="Licence of the exemplars, recorded in the model's provenance.")
@_friendly
def train(images, method, preset, out, iters, patch, batch, lr, seed, resume, force, licence):
    """Train a generator on IMAGES (files or folders; several images make a texture manifold)."""
    from dataclasses import replace
    from texgen import checkpoint
    from texgen.data import load_exemplars
    from texgen.train.psgan import PRESETS, train as run_train

    out = Path(out)
    if (out / checkpoint.MODEL_FILE).exists() and not (resume or force):
        raise TexgenError(f"{out} already holds a model: pass --resume to continue it or --force to overwrite")
    if resume and not (out / checkpoint.TRAIN_FILE).exists():
        raise TexgenError(f"nothing to resume in {out}")
    model_cfg, cfg = PRESETS[preset]
    if method == "sgan":
        model_cfg = replace(model_cfg, n_global=0, n_periodic=0)
    overrides = {k: v for k, v in dict(iters=iters, patch=patch, batch=batch, lr=lr).items() if v}
    cfg = replace(cfg, seed=seed, **overrides)
    imgs = load_exemplars(list(images))
    prov = {"method": method, "preset": preset,
            "exemplars": [Path(p).name for p in images], "licence": licence}
    _interrupt_on_sigterm()             # a scheduler's kill saves a checkpoint like Ctrl-C
    run_train(imgs, out, model_cfg, cfg, resume=resume, provenance=prov)
    click.echo(f"saved {out}")


def _interrupt_on_sigterm():
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:     # started in the background
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _resolve_model(model: str | None) -> Path:
    from texgen.builtin import builtin_path
    return builtin_path(model)


@main.command()
@click.option("--model", help="Model folder, .safetensors file or built-in name (default: the built-in demo).")
@click.option("--size", default="1024x1024", show_default=True, help="WIDTHxHEIGHT in px.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--morph", "morph_seed", type=int, help="Morph across the canvas to the texture of this seed (manifold models).")
@click.option("--tileable/--no-tileable", default=True, show_default=True,
              help="--no-tileable paints a larger torus and crops it: no repeat visible, no wrap.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True)
@click.option("--tile", type=int, default=32, show_default=True, help="Tile edge in noise cells: bounds memory (32: ~1.3 GB at 8192 px).")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="ONNX models only: where onnxruntime paints (auto: CUDA when it works).")
@click.option("--threads", type=click.IntRange(min=1), help="ONNX models only: CPU threads per operator.")
@_friendly
def generate(model, size, seed, morph_seed, tileable, bits, tile, out, device, threads):
    """Paint a texture of any size from a trained model (or a .onnx file from `texgen export`)."""
    import numpy as np

    from texgen.runtime.canvas import parse_size, synthesize
    from texgen.runtime.imageio import save_image

    w, h = parse_size(size)
    if model is not None and model.lower().endswith(".onnx"):
        from texgen.runtime.onnx_painter import OnnxPainter     # no torch on this path
        painter = OnnxPainter(model, device=device, threads=threads)
        run, layout, scale, margin = painter.run, painter.layout, painter.scale, painter.margin
        channels = painter.channels
        G = None                # the period note needs the torch model's wave MLP
    else:
        from texgen.paint import load_generator, torch_runner
        G, _ = load_generator(_resolve_model(model))
        run, layout, scale, margin = torch_runner(G), G.cfg.layout, G.cfg.scale, G.margin
        channels = G.cfg.channels
    # a non-tileable canvas is a crop of a torus a quarter bigger: its edges never meet
    pw, ph = (w, h) if tileable else (w + w // 4 + scale, h + h // 4 + scale)
    from tqdm import tqdm
    with tqdm(total=1, desc="paint", unit="tile", leave=False) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)
        # tiles go straight into 8/16-bit pixels: an 8192 px canvas never exists as float32
        img = np.empty((ph, pw, channels), np.uint16 if bits == "16" else np.uint8)
        synthesize(run, layout, scale, margin, pw, ph, seed=seed, morph_seed=morph_seed,
                   tile=tile, progress=progress, out=img)
    img = img[:h, :w]
    if G is not None:
        _report_distortion(G, seed, pw, ph)
    save_image(out, img[..., :3] if img.shape[2] >= 3 else img, bits=int(bits))
    click.echo(f"wrote {out} ({w}x{h}, seed {seed})")


@main.command("export")
@click.argument("model")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--fp16", is_flag=True, help="Half-precision conv trunk: half the file, for GPUs.")
@_friendly
def export_cmd(model, out, fp16):
    """Export MODEL to ONNX, for `texgen generate --model X.onnx` and apps without PyTorch."""
    from export.onnx_export import export_onnx
    meta = export_onnx(_resolve_model(model), out, fp16=fp16)
    click.echo(f"wrote {out} ({meta['method']}, {meta['precision']})")


def _report_distortion(G, seed, w, h):
    """Rounding the waves to the canvas changes their periods: say so when it shows."""
    from texgen.paint import wave_numbers
    from texgen.runtime.canvas import period_distortion, torus_cells, whole_period_sizes
    k = wave_numbers(G, seed)
    d = period_distortion(k, *torus_cells(w, h, G.cfg.scale))
    if d > 0.02:
        better = whole_period_sizes(k, w, h, G.cfg.scale)
        hint = f"; {better[0]}x{better[1]} holds whole periods" if better else ""
        click.echo(f"note: periods stretched by up to {d:.0%} to tile at {w}x{h}{hint}", err=True)


@main.command()
@click.argument("model")
@_friendly
def info(model):
    """Describe a model: method, channels, noise layout, periods, provenance."""
    import json
    from texgen import checkpoint
    _, meta = checkpoint.load_model(_resolve_model(model))
    cfg = meta["config"]
    click.echo(json.dumps({"config": cfg, "train": meta.get("train"),
                           "iteration": meta.get("iteration"),
                           "provenance": meta.get("provenance")}, indent=2))


@main.command()
@_friendly
def models():
    """List the built-in models."""
    from texgen.builtin import list_builtin
    for name, desc in list_builtin():
        click.echo(f"{name:12s} {desc}")


if __name__ == "__main__":
    main()
