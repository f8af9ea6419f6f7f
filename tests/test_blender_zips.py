"""The extension zips: one per platform, each carrying wheels for both of Blender's Pythons
(3.11: Blender 4.2-5.0; 3.13: 5.1-5.3), validated by Blender's own tool, and installed,
enabled, painted with and rendered in real Blender on both Pythons:

* bpy 5.0.1 on Python 3.11 with numpy 1.x: this test environment (the `test` extra);
* bpy 5.3.0 on Python 3.13 with numpy 2.x: a venv this module makes in the pytest cache
  (`PYENV_VERSION=3.13.0 python3.13 -m venv`, then `pip install bpy==5.3.0`) and drives in a
  subprocess. Without a python3.13 interpreter that test is skipped and says so.

The Windows and macOS zips cannot be installed here: their wheels' tags are checked instead.
Wheels, zips and the 3.13 venv are kept in the pytest cache (.pytest_cache/d/texgen-blender),
so a rerun only rebuilds the zips when the add-on or texgen changed.
"""

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from texgen.builtin import builtin_onnx
from texgen.runtime.maps import material_maps
from texgen.runtime.onnx_painter import OnnxPainter

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bpy") is None,
                                reason="bpy (Blender as a Python module) is not installed: "
                                       'pip install -e ".[test]" on Python 3.11 brings bpy==5.0.1')

ROOT = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve().parent / "blender_helpers"
BPY_313 = "bpy==5.3.0"
U8 = 0.5 / 255 + 1e-6


def _load_build():
    spec = importlib.util.spec_from_file_location("texgen_addon_build", ROOT / "blender_addon/build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


build = _load_build()
# what each zip is: (platform, --ort)
ZIPS = (("linux-x64", "cpu"), ("windows-x64", "gpu"), ("macos-arm64", "gpu"))


def _cache(request) -> Path:
    c = getattr(request.config, "cache", None)
    return Path(c.mkdir("texgen-blender")) if c is not None else Path(request.config.rootpath) / ".texgen-blender"


def _sources_digest() -> str:
    """Everything a zip is built from: a change anywhere rebuilds the zips."""
    h = hashlib.sha256()
    for top in ("blender_addon", "texgen"):
        for p in sorted((ROOT / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    for name in ("pyproject.toml", "README.md"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def zips(request) -> dict[str, Path]:
    """{platform: zip}, built by build.py (its exit status says Blender's validator passed)."""
    cache = _cache(request)
    folder = cache / "zips" / _sources_digest()
    version = build.tomllib.loads((ROOT / "blender_addon/blender_manifest.toml").read_text())["version"]
    out = {plat: folder / build.zip_name(version, plat, ort) for plat, ort in ZIPS}
    if not all(z.is_file() for z in out.values()):
        shutil.rmtree(cache / "zips", ignore_errors=True)       # older builds
        for plat, ort in ZIPS:
            proc = subprocess.run([sys.executable, str(ROOT / "blender_addon/build.py"),
                                   "--platform", plat, "--ort", ort, "--out", str(folder),
                                   "--wheel-cache", str(cache / "wheels")],
                                  capture_output=True, text=True, timeout=1800)
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_every_zip_passes_blenders_validator(zips):
    tool = build.find_blender_ext()
    for plat, z in zips.items():
        proc = subprocess.run([sys.executable, str(tool), "validate", str(z)],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and "Success" in proc.stdout, (plat, proc.stdout + proc.stderr)
        manifest = build.tomllib.loads(zipfile.ZipFile(z).read("blender_manifest.toml").decode())
        assert manifest["platforms"] == [plat]
        assert manifest["blender_version_min"] == "4.2.0"


def _wheels(z: Path) -> list[str]:
    return [n.split("/")[1] for n in zipfile.ZipFile(z).namelist() if n.startswith("wheels/")]


def test_bundled_wheels_match_their_platform_and_python(zips):
    """Every wheel is for the zip's platform and for Python 3.11 or 3.13 (both, for each
    compiled package), numpy is not bundled, texgen is pure Python, and each compiled
    package's cp311 wheel is the newer release (Blender 4.2.0 keeps the newest wheel of a
    package whatever its Python tag: build.py's docstring)."""
    from packaging.utils import parse_wheel_filename
    arch = {"linux-x64": lambda p: p.startswith("manylinux") and p.endswith("_x86_64"),
            "windows-x64": lambda p: p == "win_amd64",
            "macos-arm64": lambda p: re.fullmatch(r"macosx_(1[1-3])_\d+_(arm64|universal2)", p)}
    for plat, z in zips.items():
        versions: dict[str, dict[str, object]] = {}
        names = _wheels(z)
        assert len(names) == len(set(names))
        for w in names:
            name, version, _, tags = parse_wheel_filename(w)
            assert name != "numpy", (plat, w)
            if name == "texgen":
                assert {(t.interpreter, t.abi, t.platform) for t in tags} == {("py3", "none", "any")}
                continue
            pythons = {t.interpreter for t in tags}
            assert len(pythons) == 1 and pythons <= {"cp311", "cp313"}, (plat, w)
            assert {t.abi for t in tags} == pythons, (plat, w)
            assert all(arch[plat](t.platform) for t in tags), (plat, w)
            versions.setdefault(name, {})[pythons.pop()] = version
        ort = build.ONNXRUNTIME[plat, dict(ZIPS)[plat]]
        assert set(versions) == {ort, "pillow"}, (plat, versions)
        for name, by_python in versions.items():
            assert set(by_python) == {"cp311", "cp313"}, (plat, name)
            assert by_python["cp311"] > by_python["cp313"], (plat, name, by_python)


def test_each_platform_gets_its_gpu_onnxruntime():
    """Without building them (onnxruntime-gpu's wheels are 255 MB each): the default zips carry
    CUDA on Linux, DirectML on Windows, CoreML's plain onnxruntime on macOS, for both Pythons."""
    assert build.plan("linux-x64") == [("onnxruntime-gpu", "1.31.1", "3.11"),
                                       ("onnxruntime-gpu", "1.31.0", "3.13"),
                                       ("pillow", "12.1.1", "3.11"), ("pillow", "12.1.0", "3.13")]
    assert {p for p, _, _ in build.plan("windows-x64")} == {"onnxruntime-directml", "pillow"}
    assert {p for p, _, _ in build.plan("macos-arm64")} == {"onnxruntime", "pillow"}
    assert {p: v for p, v, _ in build.plan("macos-arm64")}["onnxruntime"] == "1.23.0"
    for pkg, by_python in [*build.WHEELS.items(), *build.PLATFORM_WHEELS.items()]:
        assert tuple(map(int, by_python["3.11"].split("."))) > \
            tuple(map(int, by_python["3.13"].split("."))), pkg


# ----------------------------------------------------------------------------- in Blender

def _install(python: str, zip_path: Path, out: Path, timeout: int = 600) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(out / "user")}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([python, str(HELPERS / "install.py"), str(zip_path), str(out)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads((out / "result.json").read_text())
    assert "crash" not in r, r["crash"]
    return r


@pytest.fixture(scope="module")
def runtime_color():
    """The built-in's 1K colour for seed 2, painted here (numpy 1.x, this onnxruntime)."""
    p = OnnxPainter(builtin_onnx("bricks"), device="cpu")
    return material_maps(p.paint(1024, 1024, seed=2), p.maps, ["color"])["color"]


def check_install(r: dict, out: Path, runtime_color, python: str) -> None:
    assert r["versions"]["python"].startswith(python)
    assert r["enabled"] and r["operator"]
    assert r["torch_importable"] is False          # only Blender's and the zip's modules
    prefs = r["prefs_panel"]
    assert [line for line in prefs if line.startswith("unknown")] == []
    assert {"prop device", "prop threads", "prop texture_folder"} <= set(prefs)
    assert any("onnxruntime providers:" in line and "CPUExecutionProvider" in line
               for line in prefs)
    assert all(Path(f).is_relative_to(r["site"]) for f in r["origins"].values()), r["origins"]
    shipped = {p.parent.name for p in (ROOT / "texgen/builtin").glob("*/model.onnx")}
    assert set(r["builtin"]) == shipped             # the wheel carries every built-in ONNX model
    assert r["material"] == "texgen"
    assert r["images"] == ["texgen color", "texgen height", "texgen normal", "texgen roughness"]
    assert len(r["written"]) == 4 and all(w.startswith("bricks_s2_1024_") for w in r["written"])
    assert r["last_run"].startswith("seed 2, 1024 px: painted on CPU") and r["device_note"] == ""
    got = np.load(out / "color.npy")
    assert np.abs(got - runtime_color).max() <= U8      # the same pixels across numpy/Python
    px = np.asarray(Image.open(out / "render.png").convert("RGB"), np.float32) / 255
    assert 0.05 < px.mean() < 0.95 and px.reshape(-1, 3).std(axis=0).mean() > 0.015
    assert r["disabled"]


def test_linux_zip_in_blender_5_0_python_3_11(zips, tmp_path, runtime_color):
    r = _install(sys.executable, zips["linux-x64"], tmp_path)
    assert r["versions"]["blender"].startswith("5.0") and r["versions"]["numpy"].startswith("1.")
    assert r["versions"]["onnxruntime"] == build.WHEELS["onnxruntime"]["3.11"]
    check_install(r, tmp_path, runtime_color, "3.11")


def _python313() -> str | None:
    exe = shutil.which("python3.13")
    if exe is None:
        return None
    env = {**os.environ, "PYENV_VERSION": os.environ.get("PYENV_VERSION", "3.13.0")}
    ok = subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
                        env=env, capture_output=True).returncode == 0
    return exe if ok else None


@pytest.fixture(scope="module")
def blender_313(request) -> Path:
    """The Python of a venv holding bpy 5.3.0 (Python 3.13, numpy 2.x), made once."""
    exe = _python313()
    if exe is None:
        pytest.skip("no python3.13 interpreter (PYENV_VERSION=3.13.0 python3.13) to run "
                    "Blender 5.3 (bpy 5.3.0) with")
    venv = _cache(request) / "py313"
    python = venv / "bin" / "python"
    done = venv / f"{BPY_313}.done"
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)
        env = {**os.environ, "PYENV_VERSION": os.environ.get("PYENV_VERSION", "3.13.0")}
        subprocess.run([exe, "-m", "venv", str(venv)], check=True, env=env)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", BPY_313],
                              capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        done.write_text("ok\n")
    return python


def test_linux_zip_in_blender_5_3_python_3_13(zips, blender_313, tmp_path, runtime_color):
    # Blender 5.3's own validator accepts the zip too
    tool = next((blender_313.parent.parent / "lib").glob(
        "python3.13/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    proc = subprocess.run([str(blender_313), str(tool), "validate", str(zips["linux-x64"])],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr
    r = _install(str(blender_313), zips["linux-x64"], tmp_path)
    assert r["versions"]["blender"].startswith("5.3") and r["versions"]["numpy"].startswith("2.")
    assert r["versions"]["onnxruntime"] == build.WHEELS["onnxruntime"]["3.13"]
    check_install(r, tmp_path, runtime_color, "3.13")
