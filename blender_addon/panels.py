"""The texgen tab, in the 3D viewport's sidebar and in the Shader Editor's (same panels)."""

import hashlib

import bpy

from texgen.errors import TexgenError

from . import icons, models, preferences, properties, seeds


def _thumbnail(png: bytes) -> int:
    """Icon id of a model's exemplar thumbnail (PNG bytes from the ONNX file)."""
    key = hashlib.sha1(png).hexdigest()
    coll = icons.collection()
    if key not in coll:
        path = preferences.user_dir("thumbnails") / f"{key}.png"
        if not path.exists():
            path.write_bytes(png)
        coll.load(key, str(path), "IMAGE")
    return coll[key].icon_id


def current_model(s):
    """(ModelInfo or None, error text or "") for the model the panel names."""
    try:
        return models.model_info(properties.model_path(s)), ""
    except TexgenError as e:
        return None, str(e)


class _Panel:
    bl_region_type = "UI"
    bl_category = "texgen"


def draw_main(layout, context):
    s = context.scene.texgen
    state = context.window_manager.texgen_job

    col = layout.column()
    col.row().prop(s, "model_source", expand=True)
    if s.model_source == "BUILTIN":
        col.prop(s, "builtin_model", text="")
    elif s.model_source == "FOLDER":
        col.prop(s, "model_folder", text="")
        col.prop(s, "folder_model", text="")
    else:
        col.prop(s, "model_file", text="")
    info, error = current_model(s)
    if error:
        col.label(text=error, icon="ERROR")
    else:
        row = col.row()
        if info.exemplar_png and icons.collection() is not None:
            row.template_icon(icon_value=_thumbnail(info.exemplar_png), scale=3)
        sub = row.column(align=True)
        sub.label(text=f"paints {', '.join(info.maps)}")
        if info.manifold:
            sub.label(text=f"manifold of {info.images} textures")
        texel = info.surface.texel_size_or_default
        known = "" if info.surface.texel_size else " (assumed)"
        per = "tile" if s.use_udim else "repeat"
        sub.label(text=f"1 px = {texel * 1000:.3g} mm{known}: {int(s.size) * texel:.2f} m "
                       f"per {per}")

    col.separator()
    col.row().prop(s, "size", expand=True)
    row = col.row(align=True)
    row.prop(s, "use_udim", toggle=True)
    if s.use_udim:
        row.prop(s, "udim_cols")
        row.prop(s, "udim_rows")
        n = int(s.size)
        col.label(text=f"a {s.udim_cols * n} x {s.udim_rows * n} px texture in "
                       f"{s.udim_cols * s.udim_rows} tiles", icon="UV")
        if info is not None:
            left = [m for m in s.maps if m not in info.maps]
            if left:
                col.label(text=f"UDIM: {', '.join(sorted(left))} left out (derived from the "
                               f"whole texture)", icon="INFO")
    row = col.row(align=True)
    row.prop(s, "seed")
    if info is not None and info.manifold:          # morphing needs several textures
        row.prop(s, "use_morph", toggle=True)
        if s.use_morph:
            col.prop(s, "morph_seed")

    col.separator()
    col.label(text="Maps")
    col.row(align=True).prop(s, "maps", expand=True)
    if info is not None:
        cannot = [m for m in s.maps if m not in info.can_make]
        if cannot:
            col.label(text=f"this model cannot give: {', '.join(cannot)}", icon="ERROR")

    col.separator()
    col.prop(s, "material_name")
    col.prop(s, "texture_scale")
    if "height" in s.maps:
        col.prop(s, "displacement_scale")
    col.prop(s, "pack_images")

    col.separator()
    if state.running:
        row = col.row(align=True)
        row.progress(factor=state.progress, type="BAR",
                     text=f"{state.status} {state.progress:.0%}")
        row.operator("texgen.cancel", text="", icon="CANCEL")
    else:
        col.operator("texgen.generate", icon="TEXTURE")
    if state.last_run:
        col.label(text=state.last_run, icon="CHECKMARK")
    if state.device_note:
        col.label(text=state.device_note, icon="INFO")


def draw_seeds(layout, context):
    """The seed browser: a 3 x 3 grid of previews; a click generates that seed."""
    s = context.scene.texgen
    col = layout.column()
    info, _ = current_model(s)
    shown = []
    if info is not None:
        morph = s.morph_seed if s.use_morph and info.manifold else None
        n = int(s.size)
        shown = seeds.grid(seeds.key(properties.model_path(s), n, n, morph))
    row = col.row(align=True)
    row.operator("texgen.seed_previews", text="", icon="TRIA_LEFT").step = -1
    row.operator("texgen.seed_previews", text=f"Seeds {s.preview_page}-"
                                              f"{s.preview_page + seeds.GRID - 1}").step = 0
    row.operator("texgen.seed_previews", text="", icon="TRIA_RIGHT").step = 1
    grid = col.grid_flow(row_major=True, columns=3, even_columns=True, align=True)
    for seed, icon in shown:
        cell = grid.column(align=True)
        cell.template_icon(icon_value=icon, scale=4)
        cell.operator("texgen.pick_seed", text=str(seed),
                      depress=seed == s.seed).seed = seed


def draw_map_settings(layout, context):
    s = context.scene.texgen
    col = layout.column()
    col.use_property_split = True
    for name in properties.KNOBS:
        col.prop(s, name)
    try:
        stale = s.knobs_model != str(properties.model_path(s))
    except TexgenError:
        stale = False
    if stale:                       # set on Generate (drawing may not write properties)
        col.label(text="Generate starts from the model's defaults", icon="INFO")
    col.operator("texgen.reset_map_settings", icon="LOOP_BACK")


def _make(space: str, poll=None):
    """The texgen panel and its subpanels (seeds, map settings) for one editor's sidebar."""
    prefix = f"TEXGEN_PT_{space.lower()}"
    main = type(f"{prefix}_main", (_Panel, bpy.types.Panel), {
        "bl_idname": f"{prefix}_main", "bl_label": "texgen", "bl_space_type": space,
        "draw": lambda self, context: draw_main(self.layout, context),
        **({"poll": classmethod(poll)} if poll else {}),
    })
    browse = type(f"{prefix}_seeds", (_Panel, bpy.types.Panel), {
        "bl_idname": f"{prefix}_seeds", "bl_label": "Seeds", "bl_space_type": space,
        "bl_parent_id": f"{prefix}_main",
        "draw": lambda self, context: draw_seeds(self.layout, context),
    })
    sub = type(f"{prefix}_maps", (_Panel, bpy.types.Panel), {
        "bl_idname": f"{prefix}_maps", "bl_label": "Map settings", "bl_space_type": space,
        "bl_parent_id": f"{prefix}_main", "bl_options": {"DEFAULT_CLOSED"},
        "draw": lambda self, context: draw_map_settings(self.layout, context),
    })
    return main, browse, sub


def _shader_editor(cls, context):
    return getattr(context.space_data, "tree_type", "") == "ShaderNodeTree"


classes = (*_make("VIEW_3D"), *_make("NODE_EDITOR", _shader_editor))
