"""What both helper scripts share: recording a session to OUT/result.json, and a stand-in
for the UI layout that panels draw into."""

import json
import traceback
from pathlib import Path

import bpy
import numpy as np


def record(main, out: Path) -> None:
    """main(result) fills the dict; a crash is recorded (under "crash") for the test to show."""
    result: dict = {}
    try:
        main(result)
    except Exception:
        result["crash"] = traceback.format_exc()
    (Path(out) / "result.json").write_text(json.dumps(result, indent=1))


def image_pixels(img) -> np.ndarray:
    """(H, W, 4) float32, top row first (Blender stores rows bottom-up)."""
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    return px.reshape(h, w, 4)[::-1]


def render_from_above(path: Path, size: int = 64) -> None:
    """A size x size Cycles render (CPU, 4 samples) of the scene from 2.6 m above the
    origin, lit by a sun, written to path."""
    scene = bpy.context.scene
    bpy.ops.object.camera_add(location=(0, 0, 2.6), rotation=(0, 0, 0))
    scene.camera = bpy.context.active_object
    bpy.ops.object.light_add(type="SUN", location=(0, 0, 5))
    bpy.context.active_object.data.energy = 3.0
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


class CheckingLayout:
    """Stands in for bpy.types.UILayout (headless Blender draws no panels): records what the
    panel code asks for and checks every name against Blender's own tables, so a typo in a
    property, icon or operator is caught here as it would break the panel in Blender."""
    ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())

    def __init__(self, log):
        self.log = log
        self.use_property_split = False

    def _icon(self, icon):
        if icon and icon not in self.ICONS:
            self.log.append(f"unknown icon {icon}")

    def row(self, **kw):
        return self

    column = box = grid_flow = row

    def separator(self, **kw):
        pass

    def prop(self, data, name, **kw):
        if name not in data.bl_rna.properties:
            self.log.append(f"unknown property {name}")
        getattr(data, name)
        self.log.append(f"prop {name}")

    def label(self, text="", icon="NONE", **kw):
        self._icon(icon)
        self.log.append(f"label {icon} {text}")

    def operator(self, idname, icon="NONE", text=None, **kw):
        """Records the operator (and its text); returns a stand-in for its properties that
        checks every name set on it against the operator's own."""
        self._icon(icon)
        group, name = idname.split(".")
        registered = hasattr(bpy.types, f"{group.upper()}_OT_{name}")
        if not hasattr(getattr(bpy.ops, group), name) or not registered:
            self.log.append(f"unknown operator {idname}")
            props = set()
        else:
            props = set(getattr(getattr(bpy.ops, group), name).get_rna_type().properties.keys())
        self.log.append(f"operator {idname} {text or ''}".rstrip())
        log = self.log

        class Properties:
            def __setattr__(self, key, value):
                if key not in props:
                    log.append(f"unknown operator property {idname}.{key}")
                object.__setattr__(self, key, value)
        return Properties()

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(f"progress {text}")

    def template_icon(self, icon_value=0, scale=1.0):
        self.log.append(f"icon {icon_value}")
