"""Property-based fuzzing of every command (Hypothesis): generated option values, sizes, seeds,
paths, image headers and truncations.

Each example draws a valid value for every option of a command, then (half the time) breaks
one of them with a value the command must refuse: a negative, NaN or huge number, text, a
missing, truncated or foreign file, a path it must not write. The property: a valid command
exits 0 with a valid output and nothing else added; a broken one exits 1 with one 'error:'
line and leaves the folder as it was; neither ever shows a traceback.

Bounded for CI: a fixed number of examples per command (derandomized: the same ones each
run), tiny models, sizes up to 160 px. Hunt with more, random ones:
    TEXGEN_FUZZ=300 python -m pytest tests/test_fuzz.py --hypothesis-show-statistics
"""

import contextlib
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from conftest import one_error_line, png_bytes, stripes
from texgen.cli import main
from texgen.errors import TexgenError
from texgen.runtime.imageio import read_image, save_image
from texgen.validate import RANGES, SEED_MAX

HUNT = int(os.environ.get("TEXGEN_FUZZ", "0"))
# a library's UserWarning would be a line beside the answer: here it fails the example
pytestmark = pytest.mark.filterwarnings("error::UserWarning")


def bounded(n: int, *checks):
    """n examples in CI (the same every run), or TEXGEN_FUZZ random ones."""
    return settings(max_examples=HUNT or n, deadline=None, derandomize=not HUNT, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, *checks])


def run(args: list):
    return CliRunner().invoke(main, [str(a) for a in args])


def listing(folder: Path) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@contextlib.contextmanager
def fresh():
    """An empty folder for one example."""
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ----------------------------------------------------------------------------- one fault

def command(data, options: dict) -> tuple[list, str | None]:
    """Draw the arguments of one example: options maps an option (or "ARG" for a positional
    one) to (valid, invalid) strategies (invalid None: it cannot be broken); a drawn None
    leaves the option out, True and False set or leave a flag. Half the examples are all
    valid; the others break exactly one option. Returns (args, the broken option)."""
    breakable = sorted(k for k, (_, invalid) in options.items() if invalid is not None)
    broken = data.draw(st.one_of(st.none(), st.sampled_from(breakable)), label="broken")
    args = []
    for name, (valid, invalid) in options.items():
        value = data.draw(invalid if name == broken else valid, label=name)
        if value is None:
            continue
        if name.startswith("ARG"):
            args.append(value)
        elif value is True:
            args.append(name)
        elif value is not False:
            args += [name, value]
    event("valid" if broken is None else f"broken {broken}")
    return args, broken


def check(res, broken, folder: Path, before: set, wanted=lambda added: True) -> bool:
    """Valid: exit 0, the outputs `wanted` accepts, nothing hidden or temporary added. Broken:
    exit 1, one 'error:' line, the folder as it was. Never a traceback."""
    assert "Traceback" not in res.output, res.output
    added = listing(folder) - before
    if broken is None:
        assert res.exit_code == 0, res.output
        assert not [a for a in added if ".tmp" in a or Path(a).name.startswith(".")], added
        assert wanted(added), added
        return True
    one_error_line(res)
    assert added == set() and listing(folder) == before, added
    return False


# ----------------------------------------------------------------------------- values

ARG_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                   max_size=10)                         # what argv can carry: no NUL


def _accepts(name: str, text: str) -> bool:
    rng = RANGES[name]
    try:
        return rng.contains(int(text, 10) if rng.integer else float(text))
    except ValueError:
        return False


def numbers(name: str, valid, invalid_numbers):
    """(valid, invalid) for setting `name`: invalid are out-of-range numbers or text the
    option must refuse (NaN, inf, words, fractions for whole numbers)."""
    bad_text = ARG_TEXT.filter(lambda t: not _accepts(name, t))
    return (valid.map(str),
            st.one_of(invalid_numbers.map(str), bad_text,
                      st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "1.5", "", " "])
                      .filter(lambda t: not _accepts(name, t))))


def optional(pair):
    return st.one_of(st.none(), pair[0]), pair[1]


SEED = numbers("seed", st.integers(0, SEED_MAX), st.one_of(st.integers(max_value=-1),
                                                          st.integers(min_value=SEED_MAX + 1)))
TILE = numbers("tile", st.integers(1, 64), st.integers(max_value=0))
SIDE = st.integers(16, 160)


def _refused_size(text: str) -> bool:
    from texgen.runtime.canvas import parse_size
    try:
        parse_size(text)
    except TexgenError:
        return True
    return False


SIZE = (st.one_of(SIDE.map(str), st.builds("{}x{}".format, SIDE, SIDE),
                  st.builds(" {} X {} ".format, SIDE, SIDE)),
        st.one_of(st.builds("{}x{}".format, st.integers(-20, 15), SIDE),
                  st.builds("{}x{}".format, SIDE, st.integers(65537, 10 ** 12)),
                  ARG_TEXT.filter(_refused_size)))


def map_param_options() -> dict:
    """Every derived-map knob: valid values inside its MapParams range, invalid ones outside
    it (or NaN, inf, text)."""
    from dataclasses import fields
    from texgen.runtime.maps import MapParams
    out = {}
    for f in fields(MapParams):
        rng = f.metadata.get("range")
        if rng is None or isinstance(f.default, tuple):
            continue
        lo, hi = rng.lo, min(rng.hi, 64.0)
        bad = st.one_of(st.floats(max_value=rng.lo, exclude_max=not rng.lo_open),
                        st.floats(min_value=rng.hi, exclude_min=not rng.hi_open),
                        st.sampled_from([float("nan"), float("inf")]))
        valid = st.floats(lo, hi, exclude_min=rng.lo_open).map(str)
        out["--" + f.name.replace("_", "-")] = (st.one_of(st.none(), st.none(), valid),
                                                st.one_of(bad.map(str), ARG_TEXT.filter(
                                                    lambda t, r=rng: not _float_in(t, r))))
    out["--height-scales"] = (st.one_of(st.none(), st.lists(st.floats(0.5, 32), min_size=3,
                                                            max_size=3).map(_csv)),   # 3 weights
                              st.sampled_from(["", "0", "-1,4", "nan,1,2", "a,b,c", "1,2,3,4"]))
    return out


def _float_in(text, rng) -> bool:
    try:
        return rng.contains(float(text))
    except ValueError:
        return False


def _csv(xs) -> str:
    return ",".join(f"{x:g}" for x in xs)


MAP_NAMES = ["color", "normal", "height", "roughness", "ao"]
MAPS = (st.lists(st.sampled_from(MAP_NAMES), min_size=1, max_size=5, unique=True).map(",".join),
        st.one_of(st.sampled_from(["", ",", "gloss", "color,nrm", "normal,normal", " , "]),
                  ARG_TEXT.filter(lambda t: not set(t.lower().replace(" ", "").split(","))
                                  <= set(MAP_NAMES))))
IMAGE_SUFFIX = st.sampled_from([".png", ".jpg", ".tga", ".webp", ".tif", ".PNG", ".jpeg"])
BAD_SUFFIX = st.sampled_from([".exr", ".onnx", ".safetensors", "", ".txt", ".png.", ".bmp"])


# ----------------------------------------------------------------------------- models

@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory):
    """The tiny PSGAN (folder, .onnx), a tiny stylisation model (folder, .onnx), and damaged,
    foreign and missing model files."""
    import torch
    from texgen.export.onnx_export import export_onnx
    from texgen import checkpoint
    from texgen.models.texnet import TexNet, TexNetConfig
    from texgen.train.batchnorm import calibrate_batchnorm
    from texgen.runtime.stylize import content_noise
    ex, folder, onnx_model = tiny_models
    d = tmp_path_factory.mktemp("fuzz_models")
    torch.manual_seed(0)
    cfg = TexNetConfig(levels=3, noise=2, width=4, content=3)
    G = TexNet(cfg)
    rng = np.random.default_rng(0)
    calibrate_batchnorm(G, cells=3, batches=2, batch=2, draw=lambda s: content_noise(
        cfg.layout, rng.uniform(-1, 1, (2, 3, 12, 12)).astype(np.float32), cfg.scale, s))
    checkpoint.save_model(d / "stylize", G.eval(), {
        "model": "texnet", "config": cfg.to_dict(), "provenance": {"method": "stylize"}})
    export_onnx(d / "stylize", d / "stylize.onnx")
    data = onnx_model.read_bytes()
    (d / "cut.onnx").write_bytes(data[:len(data) // 3])
    (d / "junk.onnx").write_bytes(b"\x08\x07junk" * 50)
    (d / "broken").mkdir()
    (d / "broken" / "model.safetensors").write_bytes(
        (folder / "model.safetensors").read_bytes()[:999])
    return {"ex": ex, "folder": folder, "onnx": onnx_model, "stylize": d / "stylize",
            "stylize.onnx": d / "stylize.onnx", "cut": d / "cut.onnx", "junk": d / "junk.onnx",
            "broken": d / "broken", "missing": d / "missing.onnx", "builtin": "bricks",
            "nobuiltin": "no-such-model"}


def pick(models, valid: list, invalid: list):
    return (st.sampled_from(valid).map(models.get), st.sampled_from(invalid).map(models.get))


DAMAGED = ["cut", "junk", "broken", "missing", "nobuiltin"]


def image_file(folder: Path, name: str, h: int, w: int) -> Path:
    p = folder / name
    save_image(p, stripes(h, w))
    return p


def bad_image(folder: Path, kind: str) -> Path:
    """A file read_image must refuse: missing, too small, truncated, not an image."""
    p = folder / f"bad_{kind}.png"
    if kind == "small":
        save_image(p, stripes(4, 4))
    elif kind == "cut":
        save_image(p, stripes(40, 40))
        p.write_bytes(p.read_bytes()[:100])
    elif kind == "text":
        p.write_text("not an image")
    return p


BAD_IMAGE = st.sampled_from(["missing", "small", "cut", "text"])


# ----------------------------------------------------------------------------- commands

@bounded(60)
@given(data=st.data())
def test_generate(models, data):
    with fresh() as d:
        out_ok = st.builds(lambda s: d / f"t{s}", IMAGE_SUFFIX)
        args, broken = command(data, {
            "--model": pick(models, ["onnx", "onnx", "folder", "builtin"], [*DAMAGED, "stylize"]),
            "--size": SIZE, "--seed": optional(SEED), "--morph": optional(SEED),
            "--tile": optional(TILE),
            "--bits": (st.sampled_from([None, "8"]), st.sampled_from(["12", "0", "eight"])),
            "--no-tileable": (st.booleans(), None),
            "--maps": (st.one_of(st.none(), MAPS[0]), MAPS[1]),
            **map_param_options(),
            "--out": (out_ok, st.one_of(st.builds(lambda s: d / f"t{s}", BAD_SUFFIX),
                                        st.just(d), st.just(d / "file" / "t.png"))),
        })
        (d / "file").write_bytes(b"a file, not a folder")
        if "onnx" in str(args[args.index("--model") + 1]):
            args += ["--device", "cpu"]
        res = run(["generate", *args])
        out = Path(args[args.index("--out") + 1])
        if check(res, broken, d, {"file"},
                 lambda added: out.name in added and all(a == out.name or a.startswith(out.stem + "_")
                                                        for a in added)):
            from texgen.runtime.canvas import parse_size
            w, h = parse_size(args[args.index("--size") + 1])
            assert read_image(out).shape == (h, w, 3)


@bounded(30)
@given(data=st.data())
def test_generate_windows_and_udim_sets(models, data):
    """--window X,Y,W,H inside the texture, or --udim COLSxROWS --tile-size N: the window's
    pixels, or one file per UDIM tile; anything else one error line and nothing written."""
    with fresh() as d:
        if data.draw(st.booleans(), label="udim"):
            cols, rows, n = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2)),
                             data.draw(st.integers(16, 48)))
            shape = {"--udim": (st.just(f"{cols}x{rows}"),
                                st.sampled_from(["11x1", "0x2", "2", "x", "2x101", "-1x2", ""])),
                     "--tile-size": numbers("tile_size", st.just(n),
                                            st.integers(max_value=15) | st.integers(min_value=65537))}
            tiles = {f"u.{1001 + c + 10 * r}.png" for c in range(cols) for r in range(rows)}
            files = tiles | {"u.jobs.json"}         # the set's job manifest (texgen/cluster.py)
        else:
            w, h = data.draw(SIDE), data.draw(SIDE)
            x, y = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
            ww, hh = data.draw(st.integers(1, w - x)), data.draw(st.integers(1, h - y))
            shape = {"--size": (st.just(f"{w}x{h}"), None),
                     "--window": (st.just(f"{x},{y},{ww},{hh}"),
                                  st.sampled_from([f"{w},0,1,1", f"0,0,{w + 1},1", f"0,{h},4,4",
                                                   "0,0,0,5", "1,2,3", "a,b,c,d", "-1,0,4,4"]))}
            files = tiles = {"u.png"}
        args, broken = command(data, {
            "--model": pick(models, ["onnx", "folder"], [*DAMAGED, "stylize"]),
            "--seed": optional(SEED), **shape,
            "--bits": (st.sampled_from([None, "8", "16"]), st.sampled_from(["7", "x"])),
            "--out": (st.just(d / "u.png"), st.builds(lambda s: d / f"u{s}", BAD_SUFFIX)),
        })
        if "onnx" in str(args[args.index("--model") + 1]):
            args += ["--device", "cpu"]
        res = run(["generate", *args])
        if check(res, broken, d, set(), lambda added: added == files):
            for f in tiles:
                img = read_image(d / f, min_size=1)
                assert img.shape == ((n, n, 3) if "--udim" in args else (hh, ww, 3))


@bounded(30)
@given(data=st.data())
def test_stylize(models, data):
    with fresh() as d:
        h, w = data.draw(st.tuples(st.integers(8, 60), st.integers(8, 60)))
        content = image_file(d, "content.png", h, w)
        args, broken = command(data, {
            "--model": pick(models, ["stylize", "stylize.onnx"], [*DAMAGED, "onnx", "folder"]),
            "--content": (st.just(content), BAD_IMAGE.map(lambda k: bad_image(d, k))),
            "--seed": optional(SEED),
            "--stroke-scale": optional(numbers("stroke_scale", st.floats(0.25, 4),
                                               st.floats(max_value=0.2) | st.floats(min_value=4.5))),
            "--tile": optional(TILE),
            "--bits": (st.sampled_from([None, "8", "16"]), st.sampled_from(["1", "x"])),
            "--out": (st.just(d / "o.png"), st.one_of(st.builds(lambda s: d / f"o{s}", BAD_SUFFIX),
                                                      st.just(content))),
        })
        if "--device" not in args and ".onnx" in str(args[args.index("--model") + 1]):
            args += ["--device", "cpu"]
        before = listing(d)
        res = run(["stylize", *args])
        if check(res, broken, d, before, lambda added: added == {"o.png"}):
            assert read_image(d / "o.png", min_size=1).shape == (h, w, 3)


@bounded(20)
@given(data=st.data())
def test_export_set(models, data):
    with fresh() as d:
        (d / "file").write_bytes(b"a file, not a folder")
        args, broken = command(data, {
            "--model": pick(models, ["onnx"], [*DAMAGED, "folder", "builtin"]),
            "--seeds": (st.sampled_from(["1", "2,1", "1-2", " 3 "]),
                        st.sampled_from(["", "a", "5-1", "-1", "1-2000000", "1,,x"])),
            "--size": (st.sampled_from(["32", "48x32", "64"]), SIZE[1]),
            "--maps": MAPS,
            "--format": (st.sampled_from([None, "png8", "png16", "exr"]), st.sampled_from(["jpg", ""])),
            "--naming": (st.sampled_from([None, "polyhaven", "ambientcg"]), st.sampled_from(["x"])),
            "--name": (st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,7}",
                                                          fullmatch=True)),
                       st.sampled_from(["a/b", "", " x", "..", ".hidden", "a b", "é/"])),
            "--jobs": (st.sampled_from([None, "1"]), numbers("jobs", st.nothing(),
                                                               st.integers(max_value=0) | st.integers(min_value=65))[1]),
            "--tile": optional(TILE),
            **map_param_options(),
            "--out": (st.just(d / "lib"), st.just(d / "file")),
        })
        res = run(["export-set", *args])
        if check(res, broken, d, {"file"}, lambda added: "lib/contact_sheet.png" in added):
            sets = [p for p in (d / "lib").iterdir() if p.is_dir()]
            assert sets and all((s / "manifest.json").is_file() for s in sets)


@bounded(20, HealthCheck.filter_too_much)
@given(data=st.data())
def test_train(models, tiny_preset, data):
    """psgan and sgan with the tiny preset (texnet and stylize need VGG-19 for minutes: their
    refusals are in test_robustness.py)."""
    with fresh() as d:
        ex = image_file(d, "ex.png", 64, 64)
        args, broken = command(data, {
            "ARG": (st.just(ex), BAD_IMAGE.map(lambda k: bad_image(d, k))),
            "--method": (st.sampled_from([None, "psgan", "sgan"]),
                         st.sampled_from(["gan", "stylize"])),
            "--iters": (st.sampled_from(["1", "2"]), numbers("iters", st.nothing(),
                                                            st.integers(max_value=0))[1]),
            "--patch": (st.sampled_from([None, "32", "64"]),
                        st.sampled_from(["0", "-32", "40", "65536", "128", "x"])),
            # a valid --minutes beside --iters is a refusal too (tests/test_cli.py)
            "--minutes": (st.none(), st.sampled_from(["0", "-1", "x", "1e9", "nan", "1"])),
            "--batch": optional(numbers("batch", st.integers(2, 3), st.integers(max_value=0))),
            "--lr": optional(numbers("lr", st.floats(1e-6, 1), st.floats(max_value=0) | st.floats(min_value=1.01))),
            "--seed": optional(SEED),
            "--licence": (st.one_of(st.none(), ARG_TEXT.filter(lambda t: not t.startswith("-"))),
                          None),
            "--resume": (st.just(False), st.just(True)),
            "--style-scale": (st.none(), st.sampled_from(["1", "2"])),   # texnet's, not psgan's
            "--maps": (st.none(), st.sampled_from(["normal=missing.png", "gloss=x.png", "x"])),
            "--out": (st.just(d / "m"), st.just(ex)),
        })
        before = listing(d)
        res = run(["train", *args])
        if check(res, broken, d, before, lambda added: {"m/model.safetensors",
                                                        "m/training.safetensors"} <= added):
            from texgen import checkpoint
            assert checkpoint.load_model(d / "m")[1]["iteration"] >= 1


@bounded(6)
@given(data=st.data())
def test_synth(models, data):
    with fresh() as d:
        ex = image_file(d, "ex.png", 48, 48)
        args, broken = command(data, {
            "ARG": (st.just(ex), BAD_IMAGE.map(lambda k: bad_image(d, k))),
            "--size": (st.sampled_from(["32", "40x32"]),
                       st.one_of(SIZE[1], st.sampled_from(["16", "31x64"]))),   # VGG needs 32
            "--iters": (st.sampled_from(["1", "2"]), numbers("iters", st.nothing(), st.integers(max_value=0))[1]),
            "--optimizer": (st.sampled_from([None, "lbfgs", "adam"]), st.just("sgd")),
            "--lr": optional(numbers("lr", st.floats(1e-4, 0.5), st.floats(max_value=0))),
            "--seed": optional(SEED),
            "--style-scale": optional(numbers("style_scale", st.floats(1, 2), st.floats(max_value=0.1))),
            "--out": (st.builds(lambda s: d / f"s{s}", IMAGE_SUFFIX), st.just(ex)),
        })
        before = listing(d)
        res = run(["synth", *args])
        check(res, broken, d, before, lambda added: len(added) == 1)


@bounded(15)
@given(data=st.data())
def test_export_and_info(models, data):
    with fresh() as d:
        (d / "taken.onnx").write_bytes(b"an earlier export")
        (d / "folder.onnx").mkdir()
        args, broken = command(data, {
            "ARG": pick(models, ["folder", "builtin", "stylize"], [*DAMAGED, "onnx"]),
            "--out": (st.just(d / "m.onnx"),
                      st.sampled_from([d / "m.png", d / "taken.onnx", d / "folder.onnx",
                                       d / "m", models["folder"] / "model.safetensors"])),
            "--fp16": (st.booleans(), None),
        })
        before = listing(d)
        res = run(["export", *args])
        if check(res, broken, d, before, lambda added: added == {"m.onnx"}):
            info = run(["info", d / "m.onnx"])
            assert info.exit_code == 0, info.output
        assert (d / "taken.onnx").read_bytes() == b"an earlier export"
        info = run(["info", args[0]])             # info reads what export refuses (an .onnx)
        damaged = args[0] in [models[k] for k in DAMAGED]
        check(info, "ARG" if damaged else None, d, listing(d))


@bounded(15)
@given(data=st.data())
def test_eval_image(models, data):
    with fresh() as d:
        h, w = data.draw(st.tuples(st.integers(8, 90), st.integers(8, 90)))
        args, broken = command(data, {
            "--image": (st.just(image_file(d, "img.png", h, w)),
                        BAD_IMAGE.map(lambda k: bad_image(d, k))),
            "--report": (st.sampled_from([None, d / "r"]), st.just(d / "img.png")),
            "--model": (st.none(), st.just(models["onnx"])),      # not with --image
        })
        before = listing(d)
        res = run(["eval", *args])
        check(res, broken, d, before, lambda added: added in (set(), {"r", "r/metrics.json",
                                                                      "r/repeat_2x2.png"}))


# ----------------------------------------------------------------------------- image files

def _pixels(w, h, depth, colour, seed) -> bytes:
    """Deflated rows (filter byte 0) of the size a header claims, capped at 1 MB."""
    per = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1) * max(depth, 8) // 8
    n = min(h * (1 + w * per), 1 << 20)
    return zlib.compress(np.random.default_rng(seed).integers(0, 256, n, np.uint8).tobytes())


PNG_FILES = st.builds(
    lambda w, h, depth, colour, interlace, body, crc_ok, seed: png_bytes(
        w, h, depth, colour, body if body is not None else _pixels(w, h, depth, colour, seed),
        interlace, crc_ok),
    st.one_of(st.integers(1, 64), st.integers(0, 2 ** 32 - 1)),
    st.one_of(st.integers(1, 64), st.integers(0, 2 ** 32 - 1)),
    st.sampled_from([1, 2, 4, 8, 16, 3, 0]), st.sampled_from([0, 2, 3, 4, 6, 5]),
    st.sampled_from([0, 0, 1, 2]),
    st.one_of(st.none(), st.binary(max_size=64),
              st.integers(0, 1 << 24).map(lambda n: zlib.compress(bytes(n), 9))),   # bombs
    st.booleans(), st.integers(0, 9))


@pytest.fixture(scope="module")
def valid_images(tmp_path_factory):
    """Every format the readers take, as bytes: 8-bit PNG, JPEG, TGA, WebP, TIFF, 16-bit PNG
    (texgen's own decoder) and EXR."""
    from texgen.runtime.exr import write_exr
    d = tmp_path_factory.mktemp("valid")
    img = stripes(40, 56)
    out = []
    for suffix in (".png", ".jpg", ".tga", ".webp", ".tif"):
        save_image(d / f"v{suffix}", img)
        out.append((suffix, (d / f"v{suffix}").read_bytes()))
    save_image(d / "v16.png", img, bits=16)
    out.append((".png", (d / "v16.png").read_bytes()))
    write_exr(d / "v.exr", img)
    out.append((".exr", (d / "v.exr").read_bytes()))
    return out


@bounded(300)
@given(data=st.data())
def test_image_headers_and_truncations(valid_images, data):
    """read_image and read_exr on crafted PNG headers (any size, depth, colour type, interlace,
    zip bombs, bad CRCs) and on truncated and bit-flipped files of every format: an image, or
    one TexgenError line; never another exception, never past the pixel limit."""
    from texgen.runtime.exr import read_exr
    kind = data.draw(st.sampled_from(["header", "cut", "flip"]))
    if kind == "header":
        suffix, blob = ".png", data.draw(PNG_FILES)
    else:
        suffix, blob = data.draw(st.sampled_from(valid_images))
        if kind == "cut":
            blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
        else:
            b = bytearray(blob)
            for _ in range(data.draw(st.integers(1, 4))):
                b[data.draw(st.integers(0, len(b) - 1))] ^= data.draw(st.integers(1, 255))
            blob = bytes(b)
    with fresh() as d:
        p = d / f"f{suffix}"
        p.write_bytes(blob)
        try:
            img = (read_exr if suffix == ".exr" else read_image)(p)
        except TexgenError as e:
            assert "\n" not in str(e)
            event(f"{kind}: refused")
        else:
            event(f"{kind}: read")
            assert img.ndim == 3 and img.dtype == np.float32
            assert img.shape[0] * img.shape[1] <= 64_000_000
