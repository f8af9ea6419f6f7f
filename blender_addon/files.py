"""The texture files of a .blend: kept beside it when an unsaved session is saved.

While a .blend has never been saved, Generate writes its maps to the extension's user folder
(operators.texture_folder). On the first save (save_pre, which gets the new path), texgen's
images that live there are copied (hard-linked when the disk allows) into a `textures` folder
beside the new .blend and re-pointed at those copies; Blender then stores them as paths
relative to the .blend, so the project folder can move as one. The originals stay: another
unsaved session may show the same file (names are unique per content: job.file_base).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from . import material, preferences


def adopt_textures(blend_path: str) -> list[str]:
    """Copy texgen's images in the unsaved-session folder beside `blend_path` and re-point
    them; returns the names of the images moved."""
    if not blend_path:
        return []
    session = preferences.user_dir("textures").resolve()
    dest = Path(blend_path).parent / "textures"
    moved = []
    for img in bpy.data.images:
        if not img.get(material.TAG) or img.source != "FILE" or img.packed_file is not None:
            continue
        path = Path(bpy.path.abspath(img.filepath))
        if path.parent.resolve() != session or not path.is_file():
            continue
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / path.name
        if not target.exists():
            try:
                os.link(path, target)
            except OSError:             # another disk, or no hard links there
                shutil.copy2(path, target)
        img.filepath = str(target)      # Blender saves it relative to the .blend
        moved.append(img.name)
    return moved


@persistent
def on_save_pre(filepath="", *args):
    try:
        adopt_textures(filepath)
    except OSError as e:                # the .blend still saves; the images keep their paths
        print(f"texgen: could not copy the textures beside {filepath}: {e}")


def register():
    if on_save_pre not in bpy.app.handlers.save_pre:
        bpy.app.handlers.save_pre.append(on_save_pre)


def unregister():
    if on_save_pre in bpy.app.handlers.save_pre:
        bpy.app.handlers.save_pre.remove(on_save_pre)
