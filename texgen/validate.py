"""What a user may ask for, checked in one place before any work starts.

    RANGES["lr"].check("lr", 1e-3)            # TexgenError when out of range or not finite
    click.option("--lr", type=RANGES["lr"].click_type())
    check_config(train_cfg)                   # every numeric field of a training config
    out = output_file(out, IMAGE_SUFFIXES, inputs=[content])   # writable, not an input

Option ranges live in RANGES (training and painting settings, by the config field's name)
and, for the derived maps' knobs, beside each field of runtime.maps.MapParams; the CLI builds
its click types from them, so a bad value is refused by the option parser with one line and
the library checks the same numbers. Torch-free, and click is imported only by click_type(),
so the runtime (and the Blender add-on) can use Range.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Iterable

from texgen.errors import TexgenError

__all__ = ["Range", "RANGES", "SEED_MAX", "check_config", "output_file", "output_folder",
           "IMAGE_SUFFIXES", "MODEL_SUFFIXES"]

SEED_MAX = 2 ** 63 - 1          # numpy's and torch's seeds both take any int64 >= 0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".tga")   # save_image's
MODEL_SUFFIXES = (".safetensors", ".onnx")


@dataclass(frozen=True)
class Range:
    """A closed or open interval of finite numbers (integers when `integer`); None: unbounded."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """'a whole number at least 1', 'a number above 0 and at most 1', ..."""
        num = lambda x: str(x) if isinstance(x, int) else f"{x:g}"
        parts = []
        if self.lo is not None:
            parts.append(f"{'above' if self.lo_open else 'at least'} {num(self.lo)}")
        if self.hi is not None:
            parts.append(f"{'below' if self.hi_open else 'at most'} {num(self.hi)}")
        kind = "a whole number" if self.integer else "a finite number"
        return " ".join([kind, " and ".join(parts)]).strip()

    def contains(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not float(value).is_integer():
            return False
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def check(self, name: str, value) -> None:
        """TexgenError naming the setting when value is not in the range."""
        if not self.contains(value):
            raise TexgenError(f"{name} {value!r} is out of range: use {self.describe()}")

    def click_type(self):
        """A click parameter type that refuses what check refuses (NaN and inf too)."""
        import click
        rng = self

        class _Type(click.ParamType):
            name = "integer" if rng.integer else "number"

            def convert(self, value, param, ctx):
                if isinstance(value, str):
                    try:
                        value = int(value, 10) if rng.integer else float(value)
                    except ValueError:
                        self.fail(f"{value!r} is not {rng.describe()}", param, ctx)
                if not rng.contains(value):
                    self.fail(f"{value!r} is out of range: use {rng.describe()}", param, ctx)
                return value

        return _Type()


NON_NEGATIVE = Range(0)
POSITIVE = Range(0, lo_open=True)
COUNT = Range(1, integer=True)

# The range of each training and painting setting, by its name in the configs (TrainConfig,
# TexNetTrainConfig) and the CLI (--name-with-dashes). A numeric config field not listed here
# must be finite and non-negative (check_config).
RANGES: dict[str, Range] = {
    "seed": Range(0, SEED_MAX, integer=True),
    "iters": COUNT,
    "minutes": Range(0, 10080, lo_open=True),   # a week: --minutes, a training's budget
    "batch": COUNT,
    "patch": Range(1, 4096, integer=True),      # px; a multiple of the cell, checked by train
    "lr": Range(0, 1, lo_open=True),
    "beta1": Range(0, 1, hi_open=True),
    "real_label": Range(0, 1, lo_open=True),
    "d_skip_within": NON_NEGATIVE,
    "ema": Range(0, 1, hi_open=True),
    "r1": NON_NEGATIVE,
    "r1_every": COUNT,
    "descriptor_weight": NON_NEGATIVE,
    "descriptor_samples": Range(0, integer=True),
    "spectrum_weight": NON_NEGATIVE,
    "lattice_weight": NON_NEGATIVE,
    "repeat_weight": NON_NEGATIVE,
    "contrast_weight": NON_NEGATIVE,
    "fine_weight": NON_NEGATIVE,
    "fine_floor_weight": NON_NEGATIVE,
    "checker_weight": NON_NEGATIVE,
    "chroma_weight": NON_NEGATIVE,
    "clean_within": NON_NEGATIVE,
    "preview_every": COUNT,
    "ckpt_every": COUNT,
    "lr_end": Range(0, 1),
    "bn_fixed": Range(0, 1),
    "clip": POSITIVE,
    "style_scale": Range(0.125, 8),             # the descriptor's resize of the style
    "diversity": NON_NEGATIVE,
    "content_weight": NON_NEGATIVE,
    "stroke_scale": Range(0.25, 4),             # runtime/stylize.py: beyond these the content
                                                # is resized past usefulness
    "texel_size": Range(0, 100, lo_open=True),  # metres of surface per exemplar pixel
    "tile": COUNT,
    "tile_size": Range(16, 65536, integer=True),   # px of a UDIM tile (generate --udim)
    "threads": Range(1, 1024, integer=True),
    "jobs": Range(1, 64, integer=True),
}


def check_config(cfg) -> None:
    """TexgenError for the first numeric field of a config dataclass outside its RANGES entry
    (or, unlisted, not finite and non-negative): presets and --resume'd files are checked
    with the same numbers as the options."""
    assert is_dataclass(cfg), cfg
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        RANGES.get(f.name, NON_NEGATIVE).check(f.name.replace("_", " "), value)


# --------------------------------------------------------------------------- output paths

def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _writable(folder: Path, shown: Path) -> None:
    """TexgenError unless files can be created in `folder` (made, if missing, by the write):
    its nearest existing ancestor must be a folder we may write on a writable file system."""
    anc = folder
    while not anc.exists():
        if anc.parent == anc:
            break
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        raise TexgenError(f"cannot write {shown}: {anc} is a file, not a folder")
    try:
        read_only = bool(os.statvfs(anc).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):             # no statvfs on Windows
        read_only = False
    if read_only:
        raise TexgenError(f"cannot write {shown}: {anc} is on a read-only file system")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise TexgenError(f"cannot write {shown}: permission denied in {anc}")


def _not_an_input(out: Path, inputs: Iterable) -> None:
    for p in inputs:
        if p is not None and _same(out, Path(p)):
            raise TexgenError(f"{out} is an input of this command: writing it would destroy it; "
                              f"choose another output")


def output_file(path, suffixes: Iterable[str], inputs: Iterable = (), force: bool = False,
                option: str = "--out") -> Path:
    """Check an output file before the work that makes it: its suffix is one the command
    writes, it is not a folder and not one of `inputs`, its folder is writable, and it is not
    an existing model file (.safetensors, .onnx) unless `force`. A symbolic link is followed
    (the file it points to is written). Returns the path to write."""
    p = Path(path)
    suffixes = tuple(suffixes)
    if p.suffix.lower() not in suffixes:
        raise TexgenError(f"{option} {p}: the file name must end in {', '.join(suffixes)}")
    real = Path(os.path.realpath(p)) if p.is_symlink() else p
    if real.is_dir():
        raise TexgenError(f"{option} {p} is a folder: give a file name")
    _not_an_input(real, inputs)
    if real.exists() and real.suffix.lower() in MODEL_SUFFIXES and not force:
        raise TexgenError(f"{p} is a model file already: pass --force to replace it")
    _writable(real.parent, p)
    return p


def output_folder(path, inputs: Iterable = (), writes: Iterable[str] = (),
                  option: str = "--out") -> Path:
    """Check an output folder before the work: not a file, creatable or writable, and none of
    the files it will hold (`writes`, names inside it) is one of `inputs`."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise TexgenError(f"{option} {p} is a file, not a folder")
    for name in writes:
        _not_an_input(p / name, inputs)
    _writable(p, p)
    return p
