"""Build the texgen Blender extension zip into dist/ and check it with Blender's validator.

    python blender_addon/build.py              # dist/texgen-0.1.0-linux-x64.zip, CUDA-capable
    python blender_addon/build.py --ort cpu    # dist/texgen-0.1.0-linux-x64-cpu.zip, CPU only
    python blender_addon/build.py --platform linux-x64 --platform windows-x64

Steps: a pure-python wheel of texgen (`pip wheel --no-deps`, built from a copy of the sources so
no build/ litter lands in the repository), the onnxruntime and Pillow wheels for each platform
(`pip download`, cached in dist/wheels/; Pillow because texgen.runtime.imageio writes the PNGs
and Blender does not ship it; numpy is not bundled: Blender ships its own), a staging copy of
blender_addon/ whose manifest lists those wheels, then Blender's own extension tool
(bpy/<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py from the bpy wheel, or
--blender-ext) builds the zip and validates it. Exit status 0 only if the validator passes.

Which onnxruntime (measured with 1.31.1): onnxruntime-gpu is the default, a 255 MB wheel and
a 270 MB zip, because the add-on must use CUDA where there is one, and the same wheel paints on
the CPU where there is not (the install test runs it that way). The CUDA 13 and cuDNN 9
libraries it loads are not bundled (over 1 GB; NVIDIA's CUDA toolkit and cuDNN installers
bring them). --ort cpu: plain onnxruntime, 24 MB, a 38 MB zip for machines without an NVIDIA GPU.

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
PYTHON = "3.11"                         # Blender 4.2 .. 5.0 run Python 3.11
ONNXRUNTIME = "1.31.1"
PILLOW = "12.0.0"
# Blender platform -> pip platform tag (pip also accepts older tags, e.g. manylinux_2_27)
PLATFORMS = {
    "linux-x64": "manylinux_2_28_x86_64",
    "windows-x64": "win_amd64",
    "macos-arm64": "macosx_14_0_arm64",
}
NO_GPU_WHEEL = {"macos-arm64"}          # onnxruntime-gpu exists for Linux and Windows only
# what the texgen wheel is built from (the package and what pyproject.toml needs to build it);
# not export/ (it needs torch, and a top-level `export` package could clash in Blender's
# shared site-packages) nor the built-ins' .safetensors weights (torch only: the add-on
# paints their model.onnx)
SOURCES = ("pyproject.toml", "README.md", "texgen")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
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
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, src])
        (wheel,) = out.glob("texgen-*.whl")
        dest.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, dest / wheel.name))


def download(package: str, version: str, platform: str, cache: Path) -> Path:
    """The package's cp311 wheel for a Blender platform (kept in cache/<platform>/)."""
    folder = cache / platform
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    if not any(folder.glob(pattern)):
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--python-version", PYTHON, "--platform", PLATFORMS[platform], "-q", "-d", folder,
             f"{package}=={version}"])
    return sorted(folder.glob(pattern))[0]


def stage(dest: Path, wheels: list[Path], platforms: list[str]) -> Path:
    """blender_addon/ plus its wheels, with a manifest that lists them."""
    shutil.copytree(HERE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build.py",
                                                               "wheels"))
    (dest / "wheels").mkdir()
    for w in wheels:
        shutil.copy2(w, dest / "wheels" / w.name)
    manifest = (dest / "blender_manifest.toml").read_text()
    listing = ("wheels = [\n" + "".join(f'  "./wheels/{w.name}",\n' for w in wheels) + "]\n"
               f"platforms = {platforms!r}\n".replace("'", '"'))
    # top-level keys must come before the first [table]
    at = re.search(r"^\[", manifest, re.M).start()
    (dest / "blender_manifest.toml").write_text(manifest[:at] + listing + "\n" + manifest[at:])
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ort", choices=("gpu", "cpu"), default="gpu",
                    help="gpu: onnxruntime-gpu (CUDA when the computer has it, else CPU); "
                         "cpu: plain onnxruntime, a 7x smaller zip (38 MB)")
    ap.add_argument("--platform", action="append", choices=sorted(PLATFORMS),
                    help="Blender platform(s) to bundle wheels for (default: linux-x64)")
    ap.add_argument("--out", type=Path, default=ROOT / "dist", help="where the zip goes")
    ap.add_argument("--wheel-cache", type=Path, default=ROOT / "dist" / "wheels",
                    help="downloaded wheels are kept here for the next build")
    ap.add_argument("--blender-ext", type=Path, help="Blender's blender_ext.py (default: from bpy)")
    args = ap.parse_args(argv)
    platforms = args.platform or ["linux-x64"]
    tool = args.blender_ext or find_blender_ext()
    args.out.mkdir(parents=True, exist_ok=True)
    args.wheel_cache.mkdir(parents=True, exist_ok=True)

    version = tomllib.loads((HERE / "blender_manifest.toml").read_text())["version"]
    built = []
    with tempfile.TemporaryDirectory() as tmp:
        runtime = texgen_wheel(Path(tmp) / "texgen")
        for plat in platforms:      # one zip per platform: each carries only its own wheels
            gpu = args.ort == "gpu" and plat not in NO_GPU_WHEEL
            ort = "onnxruntime-gpu" if gpu else "onnxruntime"
            wheels = [runtime, download(ort, ONNXRUNTIME, plat, args.wheel_cache),
                      download("pillow", PILLOW, plat, args.wheel_cache)]
            src = stage(Path(tmp) / plat / "texgen", wheels, [plat])
            run([sys.executable, tool, "validate", src])
            z = args.out / f"texgen-{version}-{plat}{'-cpu' if ort == 'onnxruntime' else ''}.zip"
            run([sys.executable, tool, "build", "--source-dir", src, "--output-filepath", z])
            run([sys.executable, tool, "validate", z])
            built.append(z)
    for z in built:
        print(f"built {z} ({z.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
