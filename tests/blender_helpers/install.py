"""Install the extension zip into a fresh Blender user folder, enable it, generate and render.

    BLENDER_USER_RESOURCES=DIR python tests/blender_helpers/install.py ZIP OUT_DIR

Run by tests/test_blender_zips.py in a subprocess, with the Python of the Blender under test
(bpy 5.0.1 on 3.11 in the test environment, bpy 5.3.0 on 3.13 in a venv of its own). Only
what Blender itself brings (the bpy wheel and the modules it depends on, numpy among them)
and what the zip carries can be imported: texgen, onnxruntime and Pillow come from the
extension's site-packages, where Blender unpacks the bundled wheels, and anything else of the
environment's (torch, onnx, ...) is hidden, so the run proves the zip carries what it needs.
Writes OUT_DIR/result.json, OUT_DIR/color.npy and OUT_DIR/render.png; only records, the
test asserts.
"""

import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import re
import sys
import sysconfig
from pathlib import Path

from record import CheckingLayout, image_pixels, record, render_from_above

ZIP, OUT = Path(sys.argv[1]), Path(sys.argv[2])
SITE = str(Path(os.environ["BLENDER_USER_RESOURCES"]) / "extensions/.local/lib"
           / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages")
BUNDLED = {"texgen", "onnxruntime", "PIL"}
ENV_SITE = Path(sysconfig.get_paths()["purelib"]).resolve()


def _blender_brings() -> set[str]:
    """Top-level modules of bpy's own dependencies (what Blender ships beside itself)."""
    names = set()
    todo = ["bpy"]
    while todo:
        dist = todo.pop()
        try:
            files = importlib.metadata.files(dist) or []
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        names |= {f.parts[0].removesuffix(".py") for f in files if len(f.parts) >= 1
                  and not f.parts[0].endswith((".dist-info", ".data"))}
        todo += [re.split(r"[ ;<>=!~\[]", r)[0] for r in requires if "extra ==" not in r]
    return names


BLENDER = _blender_brings() | {"_distutils_hack"}


class BundledOnly(importlib.abc.MetaPathFinder):
    """Top-level BUNDLED packages come from the extension's site-packages or not at all; other
    modules of the environment's site-packages only when Blender brings them."""

    def find_spec(self, name, path=None, target=None):
        if path is not None:
            return None                 # submodules follow their package's __path__
        if name in BUNDLED:
            if sys.path_importer_cache.get(SITE, True) is None:
                del sys.path_importer_cache[SITE]   # looked up before Blender created it
            spec = importlib.machinery.PathFinder.find_spec(name, [SITE])
            if spec is None:
                raise ModuleNotFoundError(f"{name} is not in the extension's site-packages",
                                          name=name)
            return spec
        spec = importlib.machinery.PathFinder.find_spec(name)
        origin = Path(spec.origin if spec and spec.origin else
                      next(iter(spec.submodule_search_locations or []), "") if spec else "")
        inside = str(origin).startswith(str(ENV_SITE) + os.sep)
        if inside and name not in BLENDER and not str(origin).startswith(
                str(ENV_SITE / "bpy") + os.sep):
            raise ModuleNotFoundError(f"{name} is not something Blender ships", name=name)
        return None


sys.meta_path.insert(0, BundledOnly())


def main(result: dict) -> None:
    import bpy
    import numpy as np
    result["versions"] = {"blender": bpy.app.version_string, "numpy": np.__version__,
                          "python": sys.version.split()[0]}
    addon = "bl_ext.user_default.texgen"
    bpy.ops.extensions.package_install_files(filepath=str(ZIP), repo="user_default",
                                             enable_on_install=True)
    result["enabled"] = addon in bpy.context.preferences.addons
    result["operator"] = hasattr(bpy.types, "TEXGEN_OT_generate")
    result["site_packages"] = sorted(os.listdir(SITE))
    import onnxruntime
    import PIL
    import texgen
    result["origins"] = {m.__name__: m.__file__ for m in (texgen, onnxruntime, PIL)}
    result["versions"]["onnxruntime"] = onnxruntime.__version__
    result["versions"]["pillow"] = PIL.__version__
    result["site"] = SITE
    result["builtin"] = sorted(sys.modules[addon + ".models"].builtin_models())
    try:
        import torch  # noqa: F401  (must fail: the environment's own packages are hidden)
        result["torch_importable"] = True
    except ImportError:
        result["torch_importable"] = False

    # its preferences panel, drawn into a checking stand-in for the layout
    prefs = bpy.context.preferences.addons[addon].preferences

    class Drawn:
        layout = CheckingLayout(result.setdefault("prefs_panel", []))
        __getattr__ = lambda self, name: getattr(prefs, name)

    type(prefs).draw(Drawn(), bpy.context)

    # generate through the installed add-on, on a plane, with its preferences (automatic
    # device: no GPU here, so the CPU, quietly)
    prefs.texture_folder = str(OUT / "textures")
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_plane_add(size=2)
    s = bpy.context.scene.texgen
    s.model_source, s.builtin_model = "BUILTIN", "bricks"
    s.size, s.seed, s.maps = "1024", 2, {"color", "normal", "roughness", "height"}
    bpy.ops.texgen.generate()
    mat = bpy.context.active_object.active_material
    result["material"] = mat.name if mat else None
    result["images"] = sorted(n.image.name for n in mat.node_tree.nodes
                              if n.bl_idname == "ShaderNodeTexImage") if mat else []
    result["written"] = sorted(p.name for p in (OUT / "textures").glob("*.png"))
    state = bpy.context.window_manager.texgen_job
    result["last_run"], result["device_note"] = state.last_run, state.device_note
    np.save(OUT / "color.npy", image_pixels(bpy.data.images["texgen color"])[..., :3])
    render_from_above(OUT / "render.png")          # Cycles, the plane from above

    import addon_utils
    addon_utils.disable(addon)
    result["disabled"] = not hasattr(bpy.types, "TEXGEN_OT_generate")


if __name__ == "__main__":
    record(main, OUT)
