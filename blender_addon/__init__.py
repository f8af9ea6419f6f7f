"""texgen for Blender: seamless PBR materials painted by a texgen model, inside Blender.

A Blender 4.2+ extension (blender_manifest.toml). The painting is texgen's torch-free runtime
(texgen.runtime: onnxruntime + numpy), shipped with onnxruntime and Pillow as wheels in the
extension zip (build.py). The modules here hold only Blender's side:

    models.py       where models are found (built-in, a folder, a file); what they paint
    job.py          paint -> maps -> PNG files on a worker thread; seed previews (no bpy)
    material.py     PNG files -> images and a Principled BSDF material on objects
    uvs.py          each object's "texgen" UV map in metres (its UVs scaled, or box projection)
    files.py        the maps of an unsaved session move beside the .blend when it is saved
    seeds.py        the seed browser's previews
    icons.py        the preview icons (exemplar thumbnails, seed previews)
    operators.py    Generate (modal, threaded; synchronous when headless), Cancel, seeds
    properties.py   the panel's settings and the job's progress
    panels.py       the texgen tab in the 3D viewport's and the Shader Editor's sidebars
    preferences.py  device (automatic, a GPU, CPU), CPU threads, texture folder
"""

import bpy

from . import files, icons, operators, panels, preferences, properties, seeds

_classes = (*preferences.classes, *properties.classes, *operators.classes, *panels.classes)


def register():
    for cls in _classes:
        bpy.utils.register_class(cls)
    properties.register_props()
    icons.register()
    files.register()


def unregister():
    files.unregister()
    seeds.forget()
    icons.unregister()
    properties.unregister_props()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
