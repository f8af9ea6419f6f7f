"""Texture-set export: names, formats (EXR round trip), manifests, resume, atomicity, a full
disk, parallel workers and the CLI; a tiny ONNX model at 64-96 px keeps it fast."""

import errno
import json
import os
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from texgen.export.onnx_export import export_onnx
from texgen import checkpoint
from texgen.cli import main as cli
from texgen.errors import TexgenError
from texgen.runtime import texture_set as TS
from texgen.runtime.exr import read_exr, write_exr
from texgen.runtime.imageio import read_image
from texgen.runtime.maps import MAP_NAMES, MapParams, srgb_to_linear
from texgen.runtime.texture_set import SetSpec, export_library, file_sha256, parse_seeds

SPEC = SetSpec(width=64, height=64, maps=MAP_NAMES, format="png8")


@pytest.fixture(scope="module")
def model(tiny_G, tmp_path_factory):
    d = tmp_path_factory.mktemp("set_model")
    checkpoint.save_model(d / "m", tiny_G, {"config": tiny_G.cfg.to_dict(),
                                            "provenance": {"method": "psgan"}})
    export_onnx(d / "m", d / "wall.onnx")
    return d / "wall.onnx"


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _export(model, out, seeds=(1, 2), spec=SPEC, **kw):
    return export_library(model, seeds, out, spec, **kw)


# ----------------------------------------------------------------------------- EXR

@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("compression", ["none", "zip"])
def test_exr_round_trips_float32_exactly(tmp_path, channels, compression):
    rng = np.random.default_rng(channels)
    a = (rng.standard_normal((37, 53, channels)) * 10).astype(np.float32)   # not just [0, 1]
    write_exr(tmp_path / "a.exr", a, compression=compression)
    assert np.array_equal(read_exr(tmp_path / "a.exr"), a)
    assert not list(tmp_path.glob(".*"))                                  # no temp left


def test_exr_zip_compresses_and_damage_is_one_line(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (256, 1))
    write_exr(tmp_path / "z.exr", ramp)
    write_exr(tmp_path / "n.exr", ramp, compression="none")
    assert os.path.getsize(tmp_path / "z.exr") < os.path.getsize(tmp_path / "n.exr") / 4
    assert np.array_equal(read_exr(tmp_path / "z.exr")[..., 0], ramp)
    data = (tmp_path / "z.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[:len(data) // 2])
    with pytest.raises(TexgenError, match="cut.exr") as e:
        read_exr(tmp_path / "cut.exr")
    assert "\n" not in str(e.value)
    with pytest.raises(TexgenError, match="H x W x 1/3/4"):
        write_exr(tmp_path / "bad.exr", np.zeros((4, 4, 2)))


# ----------------------------------------------------------------------------- a library

def test_sets_have_the_named_files_and_a_true_manifest(model, tmp_path):
    res = _export(model, tmp_path / "lib")
    assert res["done"] == ["wall_0001", "wall_0002"] and res["skipped"] == []
    folder = tmp_path / "lib" / "wall_0001"
    assert sorted(os.listdir(folder)) == sorted([
        "wall_0001_diff.png", "wall_0001_nor_gl.png", "wall_0001_disp.png",
        "wall_0001_rough.png", "wall_0001_ao.png", "wall_0001_preview.png", "manifest.json"])
    m = json.loads((folder / "manifest.json").read_text())
    s = m["settings"]
    assert (s["seed"], s["width"], s["height"], s["format"], s["naming"]) == (1, 64, 64, "png8",
                                                                               "polyhaven")
    from texgen.runtime.onnx_painter import OnnxPainter
    assert s["model_sha256"] == OnnxPainter(model, device="cpu").metadata["texgen_sha256"]
    assert s["params"] == MapParams().to_dict()
    for name, entry in m["files"].items():
        assert entry["sha256"] == file_sha256(folder / entry["file"]), name
        assert entry["colour_space"] == ("sRGB" if name == "color" else "linear")
    assert read_image(folder / "wall_0001_rough.png", 1).shape == (64, 64, 1)
    # different seeds paint different sets
    other = tmp_path / "lib" / "wall_0002" / "wall_0002_diff.png"
    assert file_sha256(other) != m["files"]["color"]["sha256"]
    sheet = Image.open(tmp_path / "lib" / "contact_sheet.png")
    preview = Image.open(folder / "wall_0001_preview.png")
    assert preview.size == (5 * 128, 128)
    assert sheet.size[0] >= preview.size[0] and sheet.size[1] >= 2 * preview.size[1] \
        or sheet.size[0] >= 2 * preview.size[0]                  # both sets are on it


def test_ambientcg_dx_png16_and_exr(model, tmp_path):
    spec = SetSpec(width=64, height=64, maps=("color", "normal", "height"), format="png16",
                   naming="ambientcg", params=MapParams(normal_convention="dx"), prefix="rock")
    _export(model, tmp_path / "a", seeds=[7], spec=spec)
    folder = tmp_path / "a" / "rock_0007"
    assert {"rock_0007_Color.png", "rock_0007_NormalDX.png", "rock_0007_Displacement.png"} \
        <= set(os.listdir(folder))
    with Image.open(folder / "rock_0007_Displacement.png") as im:
        assert im.mode.startswith("I;16") or im.mode == "I"       # 16-bit grey
    _export(model, tmp_path / "e", seeds=[7], spec=replace(spec, format="exr"))
    exr = tmp_path / "e" / "rock_0007"
    color16 = read_image(folder / "rock_0007_Color.png")
    color_lin = read_exr(exr / "rock_0007_Color.exr")
    assert np.allclose(color_lin, srgb_to_linear(color16), atol=1e-4)     # EXR holds linear
    height = read_exr(exr / "rock_0007_Displacement.exr")
    assert height.shape == (64, 64, 1)
    assert np.allclose(height[..., 0], read_image(folder / "rock_0007_Displacement.png", 1)[..., 0],
                       atol=1 / 65535)
    m = json.loads((exr / "manifest.json").read_text())
    assert m["files"]["color"]["colour_space"] == "linear" and m["files"]["color"]["bits"] == 32


def test_rerun_skips_intact_sets_and_redoes_a_damaged_one(model, tmp_path):
    lib = tmp_path / "lib"
    _export(model, lib)
    before = _files(lib)
    res = _export(model, lib)
    assert res["done"] == [] and res["skipped"] == ["wall_0001", "wall_0002"]
    after = _files(lib)
    assert {k: v for k, v in after.items() if "contact_sheet" not in k} == \
        {k: v for k, v in before.items() if "contact_sheet" not in k}   # untouched
    target = lib / "wall_0002" / "wall_0002_nor_gl.png"
    good = target.read_bytes()
    target.write_bytes(good[:100] + bytes(b ^ 0xFF for b in good[100:120]) + good[120:])
    res = _export(model, lib)
    assert res["done"] == ["wall_0002"] and res["skipped"] == ["wall_0001"]
    assert target.read_bytes() == good
    assert all(after[k] == v for k, v in _files(lib).items() if k.startswith("wall_0001/"))


def test_a_killed_run_resumes_cleanly(model, tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    real, written = TS.write_map, []

    def dies_on_the_seventh(path, *a, **kw):
        if len(written) == 6:           # second set, after two of its maps
            raise KeyboardInterrupt
        written.append(path)
        real(path, *a, **kw)
    monkeypatch.setattr(TS, "write_map", dies_on_the_seventh)
    with pytest.raises(KeyboardInterrupt):
        _export(model, lib)
    assert not (lib / "wall_0002" / "manifest.json").exists()
    (lib / "wall_0002" / ".wall_0002_ao.png.x1y2.tmp.png").write_bytes(b"half")   # SIGKILL leftover
    first = _files(lib / "wall_0001")
    monkeypatch.setattr(TS, "write_map", real)
    res = _export(model, lib)
    assert res["done"] == ["wall_0002"] and res["skipped"] == ["wall_0001"]
    assert _files(lib / "wall_0001") == first
    assert not list(lib.rglob(".*tmp*"))
    assert len(os.listdir(lib / "wall_0002")) == 7


def test_full_disk_is_one_line_and_leaves_no_partial_file(model, tmp_path, monkeypatch):
    from texgen.runtime.png import PngWriter
    lib = tmp_path / "lib"
    real_write = PngWriter.write

    def disk_fills(self, y, rows):
        if "_disp.png" in str(self.path):   # the height map: half written, then ENOSPC
            self._file.write(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, y, rows)
    monkeypatch.setattr(PngWriter, "write", disk_fills)
    res = CliRunner().invoke(cli, ["export-set", "--model", str(model), "--seeds", "1",
                                   "--size", "64", "--format", "png8", "--out", str(lib)])
    assert res.exit_code == 1
    err = res.output.strip().splitlines()[-1]
    assert err.startswith("error: disk full writing ") and "wall_0001_disp.png" in err
    assert "Traceback" not in res.output
    left = sorted(os.listdir(lib / "wall_0001"))    # maps are encoded on several threads
    assert "wall_0001_disp.png" not in left and "manifest.json" not in left
    assert {"wall_0001_diff.png", "wall_0001_nor_gl.png"} <= set(left)
    for f in left:                                  # whole files only, no temp file
        assert read_image(lib / "wall_0001" / f).shape == (64, 64, 3)
    monkeypatch.setattr(PngWriter, "write", real_write)
    assert _export(model, lib, seeds=[1])["done"] == ["wall_0001"]


def test_parallel_workers_write_the_same_bytes(model, tmp_path):
    one = _export(model, tmp_path / "one", seeds=[1, 2, 3], sheet=False)
    ticks = []
    two = _export(model, tmp_path / "two", seeds=[1, 2, 3], jobs=2, sheet=False,
                  progress=lambda d, t: ticks.append((d, t)))
    assert one["done"] == two["done"]
    assert ticks[0] == (0, 15) and ticks[-1] == (15, 15)          # one count over all workers
    for name in one["done"]:
        for f in os.listdir(tmp_path / "one" / name):
            a = (tmp_path / "one" / name / f).read_bytes()
            assert a == (tmp_path / "two" / name / f).read_bytes(), f


# ----------------------------------------------------------------------------- bad input

def test_settings_change_needs_overwrite(model, tmp_path):
    _export(model, tmp_path / "lib", seeds=[1])
    bigger = SetSpec(width=96, height=96, maps=MAP_NAMES, format="png8")
    with pytest.raises(TexgenError, match=r"wall_0001 holds a set made with other settings "
                                          r"\(width, height differ\).*--overwrite") as e:
        _export(model, tmp_path / "lib", seeds=[1], spec=bigger)
    assert "\n" not in str(e.value)
    assert _export(model, tmp_path / "lib", seeds=[1], spec=bigger, overwrite=True)["done"]
    assert read_image(tmp_path / "lib" / "wall_0001" / "wall_0001_diff.png").shape == (96, 96, 3)


def test_bad_requests_are_refused_before_painting(model, tmp_path):
    out = tmp_path / "lib"
    for spec, msg in ((SetSpec(maps=("color", "gloss")), "unknown map 'gloss'"),
                      (SetSpec(format="tga"), "unknown format 'tga'"),
                      (SetSpec(naming="quixel"), "unknown naming 'quixel'"),
                      (SetSpec(width=8), "impossible")):
        with pytest.raises(TexgenError, match=msg):
            _export(model, out, spec=spec)
    with pytest.raises(TexgenError, match="export-set paints from an ONNX file"):
        _export(tmp_path / "model_folder", out)
    assert not out.exists()
    assert parse_seeds("1-3, 7,2,10-11") == [1, 2, 3, 7, 10, 11]
    for bad in ("", "a-b", "5-1", "1-2000000"):
        with pytest.raises(TexgenError, match="seeds"):
            parse_seeds(bad)


def test_cli_export_set_and_generate_maps(model, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["export-set", "--model", str(model), "--seeds", "3-4", "--size",
                              "64", "--maps", "color,normal,roughness", "--naming", "ambientcg",
                              "--normal-convention", "dx", "--roughness-base", "0.4",
                              "--out", str(tmp_path / "lib")])
    assert res.exit_code == 0, res.output
    assert "wrote 2 sets" in res.output
    m = json.loads((tmp_path / "lib" / "wall_0004" / "manifest.json").read_text())
    assert m["settings"]["params"]["roughness_base"] == 0.4
    assert m["files"]["normal"]["file"] == "wall_0004_NormalDX.png"
    res = runner.invoke(cli, ["export-set", "--model", str(model), "--maps", "color,nrm",
                              "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert res.output.startswith("error: unknown map 'nrm': valid maps are color, normal")
    res = runner.invoke(cli, ["generate", "--model", str(model), "--size", "64", "--device",
                              "cpu", "--maps", "normal,ao", "--out", str(tmp_path / "g.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "g_nor_gl.png").is_file() and (tmp_path / "g_ao.png").is_file()
    color = read_image(tmp_path / "g.png")
    lib = read_image(tmp_path / "lib" / "wall_0003" / "wall_0003_Color.png")
    assert color.shape == lib.shape == (64, 64, 3)
