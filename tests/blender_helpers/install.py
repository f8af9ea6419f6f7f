"""Install the extension zip into a fresh Blender user folder, enable it and generate with it.

    BLENDER_USER_RESOURCES=DIR python tests/blender_helpers/install.py ZIP MODEL.onnx OUT_DIR

Run by tests/test_blender.py in a subprocess. texgen, onnxruntime and Pillow are importable
only from the extension's own site-packages (where Blender unpacks the bundled wheels): the
development environment's copies are hidden, so the run proves the zip carries what it needs
(numpy excepted: Blender ships it, and the bpy module's environment stands in for it).
Writes OUT_DIR/result.json; only records, the test asserts.
"""

import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path

from record import CheckingLayout, record

ZIP, MODEL, OUT = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
SITE = str(Path(os.environ["BLENDER_USER_RESOURCES"])
           / "extensions/.local/lib/python3.11/site-packages")
BUNDLED = {"texgen", "onnxruntime", "PIL"}


class BundledOnly(importlib.abc.MetaPathFinder):
    """Top-level BUNDLED packages come from the extension's site-packages or not at all."""

    def find_spec(self, name, path=None, target=None):
        if name not in BUNDLED:
            return None                 # submodules follow their package's __path__
        if sys.path_importer_cache.get(SITE, True) is None:
            del sys.path_importer_cache[SITE]   # looked up before Blender created it
        spec = importlib.machinery.PathFinder.find_spec(name, [SITE])
        if spec is None:
            raise ModuleNotFoundError(f"{name} is not in the extension's site-packages", name=name)
        return spec


sys.meta_path.insert(0, BundledOnly())


def main(result: dict) -> None:
    import bpy
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
    result["site"] = SITE
    result["builtin"] = sorted(sys.modules[addon + ".models"].builtin_models())

    # its preferences panel, drawn into a checking stand-in for the layout
    prefs = bpy.context.preferences.addons[addon].preferences

    class Drawn:
        layout = CheckingLayout(result.setdefault("prefs_panel", []))
        __getattr__ = lambda self, name: getattr(prefs, name)

    type(prefs).draw(Drawn(), bpy.context)

    # generate through the installed add-on, on a plane, with its preferences
    prefs.device, prefs.texture_folder = "cpu", str(OUT / "textures")
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_plane_add()
    s = bpy.context.scene.texgen
    if result["builtin"]:
        s.model_source, s.builtin_model = "BUILTIN", result["builtin"][0]
    else:
        s.model_source, s.model_file = "FILE", str(MODEL)
    s.size, s.seed, s.maps = "1024", 2, {"color", "normal", "roughness", "height"}
    bpy.ops.texgen.generate()
    mat = bpy.context.active_object.active_material
    result["material"] = mat.name if mat else None
    result["images"] = sorted(n.image.name for n in mat.node_tree.nodes
                              if n.bl_idname == "ShaderNodeTexImage") if mat else []
    result["written"] = sorted(p.name for p in (OUT / "textures").glob("*.png"))

    import addon_utils
    addon_utils.disable(addon)
    result["disabled"] = not hasattr(bpy.types, "TEXGEN_OT_generate")


if __name__ == "__main__":
    record(main, OUT)
