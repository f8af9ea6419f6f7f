"""Build the texgen Blender extension zips into dist/, one per platform, and validate them.

    python blender_addon/build.py                       # linux-x64, windows-x64, macos-arm64
    python blender_addon/build.py --platform linux-x64 --ort cpu   # a CPU-only Linux zip

Each zip installs from disk with no network in every Blender from 4.2 LTS to 5.3, because it
carries its wheels for both of Blender's Pythons: 3.11 (Blender 4.2-5.0) and 3.13 (5.1-5.3):

    linux-x64     onnxruntime-gpu (CUDA where NVIDIA's libraries load, else the CPU; 2 x 255 MB
                  wheels) or, with --ort cpu, plain onnxruntime (2 x 24 MB)
    windows-x64   onnxruntime-directml (any DirectX 12 GPU: NVIDIA, AMD, Intel; else the CPU)
    macos-arm64   onnxruntime 1.23 (its CoreML provider paints on Apple silicon's GPU; 1.24+
                  wheels need macOS 14, 1.23's macOS 13, and there are no cp313 ones older)

plus Pillow (texgen.runtime.imageio writes the PNGs; Blender does not ship it) and a pure-python
wheel of texgen (`pip wheel --no-deps`, from a copy of the sources so no build/ litter lands in
the repository). numpy is never bundled: Blender ships its own (1.x up to 5.0, 2.x from 5.1),
and the runtime works with both. The CUDA 13 and cuDNN 9 libraries onnxruntime-gpu loads are
not bundled either (over 1 GB; NVIDIA's installers bring them).

How Blender picks wheels (read from its own bl_pkg code, in the bpy wheels):
* Blender 4.2.0 (bl_extension_ops._extensions_wheel_filter_for_platform) filters the manifest's
  wheels by platform only ("TODO: Match Python & ABI tags"); its wheel_manager then keeps, per
  package name, the wheel with the highest version, ties going to the greater file name, which
  would be the cp313 one. Blender 5.0 (_extensions_wheel_filter_for_this_system) also drops
  wheels for another Python, and its validator derives the manifest's python_versions from the
  wheels (5.1+ refuses an extension whose wheels are all cp311: "This Python version (3.13)
  isn't compatible with (3.11)").
* So one zip may list wheels for both Pythons, provided that, for each compiled package, the
  cp311 wheel is a newer release than the cp313 one (WHEELS below): a Blender that filters by
  Python takes its own, and one that does not takes the newest, which is the cp311 wheel it
  needs. test_blender_zips.py checks this rule on every zip it builds.

Steps: the wheels (`pip download`, cached in --wheel-cache), a staging copy of blender_addon/
per platform whose manifest lists that platform's wheels and `platforms = [that one]` (the
same split as Blender's `build --split-platforms`), then Blender's own extension tool
(bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py from the bpy wheel, or
--blender-ext) validates the source, builds the zip and validates the zip. Exit status 0 only
if every validation passes.

Only the stdlib here: this runs outside Blender.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHONS = ("3.11", "3.13")              # Blender 4.2-5.0; Blender 5.1-5.3
# Blender platform -> pip platform tag (pip also takes older tags, e.g. manylinux_2_27)
PLATFORMS = {
    "linux-x64": "manylinux_2_28_x86_64",
    "windows-x64": "win_amd64",
    "macos-arm64": "macosx_13_0_arm64",       # macOS 13 Ventura and later
}
# The onnxruntime package each platform's zip carries: --ort gpu (default) / cpu
ONNXRUNTIME = {
    ("linux-x64", "gpu"): "onnxruntime-gpu",
    ("windows-x64", "gpu"): "onnxruntime-directml",
    ("macos-arm64", "gpu"): "onnxruntime",        # CoreML is in the plain macOS wheel
    ("linux-x64", "cpu"): "onnxruntime",
    ("windows-x64", "cpu"): "onnxruntime",
    ("macos-arm64", "cpu"): "onnxruntime",
}
# package -> {Python: version}. The cp311 release is newer than the cp313 one on purpose: see
# the module docstring (Blender 4.2.0 keeps the newest wheel of each package, whatever its
# Python tag). onnxruntime-directml's newest release is 1.24.4.
WHEELS = {
    "onnxruntime": {"3.11": "1.31.1", "3.13": "1.31.0"},
    "onnxruntime-gpu": {"3.11": "1.31.1", "3.13": "1.31.0"},
    "onnxruntime-directml": {"3.11": "1.24.4", "3.13": "1.24.3"},
    "pillow": {"3.11": "12.1.1", "3.13": "12.1.0"},
}
# per-platform exceptions: (package, platform) -> {Python: version}
PLATFORM_WHEELS = {("onnxruntime", "macos-arm64"): {"3.11": "1.23.2", "3.13": "1.23.0"}}


def wheel_version(package: str, platform: str, python: str) -> str:
    return PLATFORM_WHEELS.get((package, platform), WHEELS[package])[python]
# what the texgen wheel is built from (the package and what pyproject.toml needs to build it:
# export/ installs as texgen.export, never a top-level `export` that could clash in Blender's
# shared site-packages; it imports torch only when used, which the add-on never does); not
# the built-ins' .safetensors weights (torch only: the add-on paints their model.onnx)
SOURCES = ("pyproject.toml", "README.md", "texgen", "export")


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def find_blender_ext() -> Path:
    """Blender's extension tool inside the installed bpy wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("build.py: Blender's extension tool ships in the bpy wheel: "
                 "`pip install bpy==5.0.1`, or pass --blender-ext PATH/blender_ext.py")
    for loc in spec.submodule_search_locations:
        found = sorted(Path(loc).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    sys.exit("build.py: no blender_ext.py inside the installed bpy; pass --blender-ext")


def texgen_wheel(dest: Path) -> Path:
    """A pure-python wheel of texgen (no dependencies: the extension brings its own)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for name in SOURCES:
            p = ROOT / name
            if p.is_dir():
                shutil.copytree(p, src / name, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc", "*.safetensors"))
            else:
                src.mkdir(exist_ok=True)
                shutil.copy2(p, src / name)
        out = Path(tmp) / "wheel"
        # setuptools at hand: build with it (no isolated environment to download)
        local = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", *local, "-q", "-w", out, src])
        (wheel,) = out.glob("texgen-*.whl")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, dest / wheel.name))


def plan(platform: str, ort: str = "gpu") -> list[tuple[str, str, str]]:
    """[(package, version, Python)] of the compiled wheels a platform's zip carries."""
    return [(pkg, wheel_version(pkg, platform, py), py)
            for pkg in (ONNXRUNTIME[platform, ort], "pillow") for py in PYTHONS]


def download(package: str, version: str, python: str, platform: str, cache: Path) -> Path:
    """The package's wheel for a Python and a Blender platform (kept in cache/<platform>/)."""
    folder = cache / platform
    tag = "cp" + python.replace(".", "")
    pattern = f"{package.replace('-', '_')}-{version}-{tag}-*.whl"
    if not any(folder.glob(pattern)):
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--python-version", python, "--platform", PLATFORMS[platform], "-q", "-d", folder,
             f"{package}=={version}"])
    found = sorted(folder.glob(pattern))
    if not found:
        sys.exit(f"build.py: pip found no {package} {version} wheel for Python {python} on "
                 f"{platform}")
    return found[0]


def stage(dest: Path, wheels: list[Path], platform: str) -> Path:
    """blender_addon/ plus its wheels, with a manifest that lists them and the platform."""
    shutil.copytree(HERE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build.py",
                                                               "wheels"))
    (dest / "wheels").mkdir()
    for w in wheels:
        shutil.copy2(w, dest / "wheels" / w.name)
    manifest = (dest / "blender_manifest.toml").read_text()
    listing = ("wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
               f'platforms = ["{platform}"]\n')
    # top-level keys must come before the first [table]
    at = re.search(r"^\[", manifest, re.M).start()
    (dest / "blender_manifest.toml").write_text(manifest[:at] + listing + "\n" + manifest[at:])
    return dest


def zip_name(version: str, platform: str, ort: str) -> str:
    return f"texgen-{version}-{platform}{'-cpu' if ort == 'cpu' else ''}.zip"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ort", choices=("gpu", "cpu"), default="gpu",
                    help="gpu: each platform's GPU onnxruntime (CUDA, DirectML, CoreML); "
                         "cpu: plain onnxruntime everywhere (the Linux zip is 10x smaller)")
    ap.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                    help="Blender platform(s) to build a zip for (default: all three)")
    ap.add_argument("--out", type=Path, default=ROOT / "dist", help="where the zips go")
    ap.add_argument("--wheel-cache", type=Path, default=ROOT / "dist" / "wheels",
                    help="downloaded wheels are kept here for the next build")
    ap.add_argument("--blender-ext", type=Path, help="Blender's blender_ext.py (default: from bpy)")
    args = ap.parse_args(argv)
    platforms = args.platform or list(PLATFORMS)
    tool = args.blender_ext or find_blender_ext()
    args.out.mkdir(parents=True, exist_ok=True)
    args.wheel_cache.mkdir(parents=True, exist_ok=True)

    version = tomllib.loads((HERE / "blender_manifest.toml").read_text())["version"]
    built = []
    with tempfile.TemporaryDirectory() as tmp:
        runtime = texgen_wheel(Path(tmp) / "texgen")
        for plat in platforms:      # one zip per platform: each carries only its own wheels
            wheels = [runtime] + [download(pkg, ver, py, plat, args.wheel_cache)
                                  for pkg, ver, py in plan(plat, args.ort)]
            src = stage(Path(tmp) / plat / "texgen", wheels, plat)
            run([sys.executable, tool, "validate", src])
            z = args.out / zip_name(version, plat, args.ort)
            run([sys.executable, tool, "build", "--source-dir", src, "--output-filepath", z])
            run([sys.executable, tool, "validate", z])
            built.append(z)
    for z in built:
        print(f"built {z} ({z.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
