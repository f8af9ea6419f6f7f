"""The panel's settings (saved with the scene) and the running job's state (window manager).

The map knobs are built from texgen.runtime.maps.MapParams (help texts), and start from the
chosen model's own defaults (its runtime.surface.Surface: e.g. the built-in bricks' light
mortar is recessed), as the CLI and export-set do: choosing another model resets them to its
defaults, and Generate does so first when the knobs still hold another model's.
"""

import dataclasses

import bpy

from texgen.errors import TexgenError
from texgen.runtime.maps import MAP_NAMES, MapParams

from . import job, material, models

SIZES = [(str(n), f"{n // 1024}K", f"{n} x {n} px") for n in (1024, 2048, 4096, 8192)]
SOURCES = [
    ("BUILTIN", "Built-in", "A model that comes with texgen"),
    ("FOLDER", "Folder", "One of the .onnx models in a folder of yours"),
    ("FILE", "File", "A .onnx model file (make one with `texgen export`)"),
]
MAP_LABELS = {"color": "Color", "normal": "Normal", "height": "Height",
              "roughness": "Roughness", "ao": "AO"}
# MapParams fields shown in the panel, with the slider ranges Blender needs
KNOBS = {
    "normal_strength": dict(min=0.0, soft_max=20.0),
    "height_invert": {},
    "roughness_invert": {},
    "roughness_base": dict(min=0.0, max=1.0),
    "roughness_contrast": dict(min=0.0, soft_max=1.0),
    "ao_strength": dict(min=0.0, soft_max=10.0),
}

# Blender keeps only pointers to the strings of dynamic enum items: hold the lists here.
_enum_cache: dict[str, list] = {}


def _builtin_items(self, context):
    found = models.builtin_models()
    items = [(n, n, models.builtin_description(p)) for n, p in found.items()]
    _enum_cache["builtin"] = items or [("NONE", "(none)", "no built-in ONNX models found")]
    return _enum_cache["builtin"]


def _folder_items(self, context):
    found = models.folder_models(bpy.path.abspath(self.model_folder)) if self.model_folder else {}
    items = [(n, n, str(p)) for n, p in found.items()]
    _enum_cache["folder"] = items or [("NONE", "(no .onnx files)", "")]
    return _enum_cache["folder"]


def _update_look(self, context):
    mat = material.find_material(self.material_name)
    if mat is not None:
        material.update_look(mat, look(self))


def _model_changed(self, context):
    try:
        reset_knobs(self)
    except TexgenError:
        pass                        # an incomplete choice: the panel says what to pick


def _knob_property(name: str, default, help_text: str, ranges: dict):
    label = name.replace("_", " ").capitalize()
    if isinstance(default, bool):
        return bpy.props.BoolProperty(name=label, default=default, description=help_text)
    return bpy.props.FloatProperty(name=label, default=float(default), description=help_text,
                                   **ranges)


class TexgenSettings(bpy.types.PropertyGroup):
    model_source: bpy.props.EnumProperty(name="Model", items=SOURCES, default="BUILTIN",
                                         update=_model_changed)
    builtin_model: bpy.props.EnumProperty(name="Built-in", items=_builtin_items,
                                          update=_model_changed)
    model_folder: bpy.props.StringProperty(name="Folder", subtype="DIR_PATH", update=_model_changed)
    folder_model: bpy.props.EnumProperty(name="Model", items=_folder_items, update=_model_changed)
    model_file: bpy.props.StringProperty(name="File", subtype="FILE_PATH", update=_model_changed)
    knobs_model: bpy.props.StringProperty(
        name="Map settings of", options={"HIDDEN"},
        description="The model whose defaults the map settings were last reset to")

    size: bpy.props.EnumProperty(name="Size", items=SIZES, default="2048",
                                 description="Pixels of the texture (with UDIM: of each tile)")
    use_udim: bpy.props.BoolProperty(
        name="UDIM", default=False,
        description="Paint a texture Columns x Rows times the size, as a UDIM set of tiles of "
                    "the size (one tiled image in Blender), for a large surface with no repeat "
                    "in sight; the whole set still tiles. It paints the colour and the maps the "
                    "model learned: derived maps need the whole texture at once")
    udim_cols: bpy.props.IntProperty(name="Columns", default=2, min=1, max=10,
                                     description="UDIM tiles across (1001..1010 make a row)")
    udim_rows: bpy.props.IntProperty(name="Rows", default=2, min=1, max=100, soft_max=16,
                                     description="UDIM tiles up")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0,
                                description="Which texture: each seed paints a different one")
    use_morph: bpy.props.BoolProperty(
        name="Morph", default=False,
        description="Blend across the texture to a second texture of the model's manifold and "
                    "back, so it still tiles (models trained on several textures)")
    morph_seed: bpy.props.IntProperty(name="Morph seed", default=1, min=0)
    maps: bpy.props.EnumProperty(
        name="Maps", options={"ENUM_FLAG"},
        items=[(m, MAP_LABELS[m], f"Make the {MAP_LABELS[m].lower()} map") for m in MAP_NAMES],
        default={"color", "normal", "roughness", "height"})

    material_name: bpy.props.StringProperty(
        name="Material", default="texgen",
        description="Generate updates this material (and its images) if texgen made it before")
    texture_scale: bpy.props.FloatProperty(
        name="Scale", default=1.0, min=0.001, soft_max=10.0, update=_update_look,
        description="Size of the texture on the surface: 1 is its real size (the model's texel "
                    "size: bricks as big as the photo's), 2 twice as big. The size in pixels "
                    "changes how much surface passes before the texture repeats, not this")
    displacement_scale: bpy.props.FloatProperty(
        name="Displacement", default=material.Look.displacement_scale, min=0.0, soft_max=0.2,
        unit="LENGTH", update=_update_look,
        description="Relief of the whole height range (the Displacement node's scale)")
    pack_images: bpy.props.BoolProperty(
        name="Pack into .blend", default=False,
        description="Store the maps inside the .blend file (bigger file, nothing to lose); "
                    "otherwise they are files in the textures folder beside it")
    preview_page: bpy.props.IntProperty(name="Seeds from", default=0, min=0,
                                        description="The first seed the seed browser shows")


# the MapParams knobs, generated from its fields
_defaults = MapParams()
_help = MapParams.help()
for _name, _ranges in KNOBS.items():
    TexgenSettings.__annotations__[_name] = _knob_property(
        _name, getattr(_defaults, _name), _help[_name], _ranges)


class TexgenJobState(bpy.types.PropertyGroup):
    """What the panel shows while a job runs and after (not saved: it lives on the window
    manager)."""
    running: bpy.props.BoolProperty(default=False)
    progress: bpy.props.FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: bpy.props.StringProperty(default="")
    last_run: bpy.props.StringProperty(default="", description="How the last texture was made")
    device_note: bpy.props.StringProperty(default="", description="Why a GPU was skipped")


# --------------------------------------------------------------------------- reading them

def model_path(s):
    """The chosen .onnx file (reads only the chosen source's fields: an empty dynamic enum
    makes Blender log a warning each time it is read)."""
    if s.model_source == "BUILTIN":
        return models.resolve("BUILTIN", builtin=s.builtin_model)
    if s.model_source == "FOLDER":
        folder = bpy.path.abspath(s.model_folder) if s.model_folder else ""
        return models.resolve("FOLDER", folder=folder,
                              folder_model=s.folder_model if folder else "")
    return models.resolve("FILE", file=bpy.path.abspath(s.model_file) if s.model_file else "")


def map_params(s) -> MapParams:
    """The model's map defaults with the knobs on top (the knobs hold those defaults unless
    the user changed them: reset_knobs)."""
    surface = models.model_info(model_path(s)).surface
    return dataclasses.replace(surface.params(), **{k: getattr(s, k) for k in KNOBS})


def reset_knobs(s, force: bool = False) -> None:
    """Set the knobs to the chosen model's map defaults, once per model choice (force: again).
    TexgenError when the choice is incomplete."""
    path = str(model_path(s))
    if s.knobs_model == path and not force:
        return
    defaults = models.model_info(path).surface.params()
    for k in KNOBS:
        setattr(s, k, getattr(defaults, k))
    s.knobs_model = path


def look(s, tile_metres: float | None = None) -> material.Look:
    return material.Look(scale=s.texture_scale, displacement_scale=s.displacement_scale,
                         tile_metres=tile_metres)


def request(s, prefs) -> job.Request:
    """The job the panel describes (TexgenError when the model choice is incomplete)."""
    wanted = tuple(m for m in MAP_NAMES if m in s.maps)
    if not wanted:
        raise TexgenError("choose at least one map")
    n = int(s.size)
    path = model_path(s)
    reset_knobs(s)                  # knobs still holding another model's defaults
    info = models.model_info(path)
    udim = (s.udim_cols, s.udim_rows) if s.use_udim else None
    if udim:
        wanted = udim_maps(wanted, info)
        from texgen.runtime.canvas import check_size
        check_size(n * udim[0], n * udim[1])
    return job.Request(model=path, width=n * (udim or (1, 1))[0], height=n * (udim or (1, 1))[1],
                       seed=s.seed, morph_seed=s.morph_seed if s.use_morph and info.manifold else None,
                       maps=wanted, params=map_params(s), device=prefs.device,
                       threads=prefs.threads, udim=udim)


def udim_maps(wanted, info) -> tuple[str, ...]:
    """The wanted maps a UDIM set can hold: those the model paints itself (colour, learned
    maps); derived maps filter the whole texture, which a set never holds at once."""
    kept = tuple(m for m in wanted if m in info.maps)
    if not kept:
        raise TexgenError(f"a UDIM set holds the maps the model paints ({', '.join(info.maps)}): "
                          f"choose one of them")
    return kept


def about(req: job.Request) -> dict:
    """What the material records about how it was made (custom properties)."""
    return {"model": str(req.model), "seed": req.seed, "size": req.tile_px,
            "morph_seed": -1 if req.morph_seed is None else req.morph_seed,
            "maps": ",".join(req.maps), "udim": "x".join(map(str, req.udim or ()))}


classes = (TexgenSettings, TexgenJobState)


def register_props():
    bpy.types.Scene.texgen = bpy.props.PointerProperty(type=TexgenSettings)
    bpy.types.WindowManager.texgen_job = bpy.props.PointerProperty(type=TexgenJobState)


def unregister_props():
    del bpy.types.WindowManager.texgen_job
    del bpy.types.Scene.texgen
