"""Add-on preferences: where onnxruntime paints, how many CPU threads, where textures go.

The device choice itself is texgen.runtime.devices' (the same for the CLI and export-set)."""

import tempfile
from pathlib import Path
from types import SimpleNamespace

import bpy

from .models import default_threads

DEVICES = [
    ("auto", "Automatic", "The GPU when a test run on it works (CUDA, DirectML or CoreML, "
                          "whichever this platform's onnxruntime has), else the CPU"),
    ("cuda", "CUDA", "An NVIDIA GPU (Linux and Windows builds with onnxruntime-gpu)"),
    ("directml", "DirectML", "Any DirectX 12 GPU: NVIDIA, AMD, Intel (the Windows build)"),
    ("coreml", "CoreML", "Apple silicon's GPU (the macOS build)"),
    ("cpu", "CPU", "The CPU only"),
]
DEFAULTS = SimpleNamespace(device="auto", threads=0, texture_folder="")


def providers() -> list[str]:
    try:
        import onnxruntime
        return list(onnxruntime.get_available_providers())
    except Exception as e:          # a broken install: shown in the preferences, not raised
        return [f"onnxruntime unavailable: {e}"]


class TEXGEN_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    device: bpy.props.EnumProperty(name="Device", items=DEVICES, default="auto")
    threads: bpy.props.IntProperty(
        name="CPU threads", default=0, min=0, max=256,
        description="Threads onnxruntime paints with on the CPU. 0: all cores but one, which "
                    "keeps Blender's interface smooth while a texture paints")
    texture_folder: bpy.props.StringProperty(
        name="Texture folder", subtype="DIR_PATH", default="",
        description="Where the PNG maps are written. Empty: a 'textures' folder next to the "
                    ".blend file (or in the add-on's user folder while the file is unsaved)")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "device")
        col.prop(self, "threads")
        col.prop(self, "texture_folder")
        box = col.box()
        box.label(text="onnxruntime providers: " + ", ".join(providers()))
        box.label(text="A GPU that fails its test run is skipped, and the panel says why",
                  icon="INFO")
        box.label(text="CUDA needs an NVIDIA driver and the CUDA 13 and cuDNN 9 libraries")


def user_dir(sub: str) -> Path:
    """The extension's own writable folder (bpy.utils.extension_path_user), or a temp folder
    when the add-on is imported as a plain package (tests, scripts) rather than installed."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path=sub, create=True))
    except ValueError:
        path = Path(tempfile.gettempdir()) / f"texgen-{sub}"
        path.mkdir(parents=True, exist_ok=True)
        return path


def get(context=None) -> SimpleNamespace:
    """The preferences, or the defaults when the add-on is imported without being enabled
    (tests, scripts)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    p = addon.preferences if addon is not None else DEFAULTS
    return SimpleNamespace(device=p.device, threads=p.threads or default_threads(),
                           texture_folder=p.texture_folder)


classes = (TEXGEN_AP_preferences,)
