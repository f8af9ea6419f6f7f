"""Generate, Cancel, the seed browser and the map-settings reset: the threaded job (job.py)
driven from Blender's main thread.

Generate is a modal operator: invoke() starts the worker thread and a window-manager timer;
each timer tick calls step(), which only reads the job's progress, updates the panel and, once
the files are written, builds the material (material.apply). step() is the only code that
touches bpy while a job runs, and it returns in milliseconds (benchmarks/blender_speed.py
measures it). A modal operator rather than bpy.app.timers: it can report to the user
(self.report), Esc cancels it, and it pushes one undo step when the material is made.

Headless (blender -b, the bpy module) timers and modal operators never run, so execute() runs
the same job synchronously.
"""

from dataclasses import dataclass, field
from pathlib import Path

import bpy

from texgen.errors import TexgenError

from . import job, material, models, preferences, properties, seeds
from .job import Job

TICK = 0.1          # seconds between main-thread steps while a job runs

_active = None      # the Run in progress (one at a time)


@dataclass
class Run:
    """A job plus what the main thread needs to finish it."""
    job: Job
    objects: list[str]              # names: objects may be deleted while the job runs
    material: str
    look: material.Look
    about: dict
    notices_shown: int = 0
    folder_note: str = ""
    size_note: str = ""             # the model does not know its real-world size
    udim_note: str = ""             # maps a UDIM set leaves out
    timer: object = field(default=None, repr=False)


def texture_folder(prefs) -> tuple[Path, str]:
    """(folder for the PNGs, a note for the user or ""): the preference, else `textures` next
    to the .blend, else (unsaved file) the extension's user folder."""
    if prefs.texture_folder:
        return Path(bpy.path.abspath(prefs.texture_folder)), ""
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//textures")), ""
    folder = preferences.user_dir("textures")
    return folder, "the .blend is unsaved, so the maps went to " + str(folder)


def target_objects(context) -> list[str]:
    """Selected objects that can hold a material (or the active one when none is selected)."""
    objs = list(context.selected_objects) if hasattr(context, "selected_objects") else []
    if not objs and context.active_object is not None:
        objs = [context.active_object]
    return [o.name for o in objs if getattr(o, "data", None) is not None
            and hasattr(o.data, "materials")]


def prepare(context) -> Run:
    """Read the panel and preferences into a Run (not started). TexgenError if incomplete."""
    s = context.scene.texgen
    prefs = preferences.get(context)
    req = properties.request(s, prefs)
    name = s.material_name.strip() or "texgen"
    folder, note = texture_folder(prefs)
    surface = models.model_info(req.model).surface
    look = properties.look(s, tile_metres=surface.texel_size_or_default * req.tile_px)
    look.pack = s.pack_images
    size_note = "" if surface.texel_size else (
        f"the model does not say how big its texture is in reality: "
        f"{surface.texel_size_or_default * 1000:g} mm per pixel assumed "
        f"(texgen annotate MODEL --exemplar-width, then export it again)")
    dropped = [m for m in properties.MAP_NAMES if m in s.maps and m not in req.maps]
    udim_note = (f"a UDIM set holds the maps the model paints: {', '.join(dropped)} left out "
                 f"(derived maps filter the whole texture)" if dropped else "")
    return Run(Job(req, folder), target_objects(context), name, look, properties.about(req),
               folder_note=note, size_note=size_note, udim_note=udim_note)


def _redraw(context) -> None:
    for win in context.window_manager.windows:
        for area in win.screen.areas:
            if area.type in {"VIEW_3D", "NODE_EDITOR"}:
                area.tag_redraw()


def step(run: Run, context, report) -> set | None:
    """One main-thread tick: mirror the job's progress into the panel; when it has finished,
    build the material and report. None while running, else the operator's return set."""
    state = context.window_manager.texgen_job
    j = run.job
    for text in j.notices[run.notices_shown:]:
        report({"WARNING"}, text)
    run.notices_shown = len(j.notices)
    if not j.finished:
        state.running, state.progress, state.status = True, j.fraction, j.phase
        _redraw(context)
        return None
    state.running, state.progress, state.status = False, 0.0, ""
    _redraw(context)
    if j.cancelled:
        report({"INFO"}, "texgen: cancelled")
        return {"CANCELLED"}
    if j.error:
        report({"ERROR"}, f"texgen: {j.error}")
        return {"CANCELLED"}
    result = j.result
    objects = [bpy.data.objects[n] for n in run.objects if n in bpy.data.objects]
    run.look.tile_metres = result.surface.texel_size_or_default * j.req.tile_px
    try:
        mat, projections = material.apply(result.files, objects, run.material, run.look,
                                          run.about, udim=j.req.udim)
    except (RuntimeError, OSError) as e:    # Blender could not read a file we just wrote
        report({"ERROR"}, f"texgen: {e}")
        return {"CANCELLED"}
    device = job.device_label(result.device)
    udim = f" (UDIM {j.req.udim[0]}x{j.req.udim[1]})" if j.req.udim else ""
    state.last_run = (f"seed {j.req.seed}, {j.req.tile_px} px{udim}: painted on {device} in "
                      f"{j.seconds:.1f} s")
    state.device_note = result.device_note
    where = f" on {len(objects)} object(s)" if objects else " (no object selected)"
    boxed = sorted(n for n, mode in projections.items() if mode == "box")
    if j.req.udim:
        cols, rows = j.req.udim
        size = (f"UDIM {cols}x{rows} tiles of {j.req.tile_px} px ({j.req.width}x{j.req.height}"
                f" px)")
        repeat = (f"{run.look.tile_metres:.2f} m per tile, the set repeats every "
                  f"{cols * run.look.tile_metres:.2f} x {rows * run.look.tile_metres:.2f} m")
    else:
        size, repeat = f"{j.req.width} px", f"{run.look.tile_metres:.2f} m per repeat"
    report({"INFO"}, f"texgen: material '{mat.name}'{where}: {size}, seed "
                     f"{j.req.seed}, painted on {device} in {j.seconds:.1f} s; {repeat}"
                     + (f"; box-projected (no usable UVs): {', '.join(boxed)}" if boxed else ""))
    if result.device_note:
        report({"WARNING"}, f"texgen: {result.device_note}")
    if run.size_note:
        report({"WARNING"}, f"texgen: {run.size_note}")
    if run.udim_note:
        report({"WARNING"}, f"texgen: {run.udim_note}")
    if run.folder_note:
        report({"WARNING"}, f"texgen: {run.folder_note}; saving the .blend moves them beside it")
    return {"FINISHED"}


class TEXGEN_OT_generate(bpy.types.Operator):
    """Paint a seamless texture with the chosen model and give the selected objects its material"""
    bl_idname = "texgen.generate"
    bl_label = "Generate"
    # UNDO: one undo step for the finished material. Not REGISTER: "Adjust Last Operation" and
    # Repeat Last would re-run execute(), the synchronous path that blocks the interface.
    bl_options = {"UNDO"}

    @classmethod
    def poll(cls, context):
        return _active is None and context.scene is not None

    def _prepare(self, context):
        try:
            return prepare(context)
        except TexgenError as e:
            self.report({"ERROR"}, f"texgen: {e}")
            return None

    def execute(self, context):
        """Synchronous: headless Blender and scripts (no UI to keep responsive)."""
        run = self._prepare(context)
        if run is None:
            return {"CANCELLED"}
        run.job.run()
        return step(run, context, self.report)

    def invoke(self, context, event):
        global _active
        if bpy.app.background:
            return self.execute(context)
        run = self._prepare(context)
        if run is None:
            return {"CANCELLED"}
        _active = run
        run.job.start()
        wm = context.window_manager
        run.timer = wm.event_timer_add(TICK, window=context.window)
        wm.modal_handler_add(self)
        step(run, context, self.report)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if _active is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            _active.job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        result = step(_active, context, self.report)
        if result is None:
            return {"PASS_THROUGH"}
        self._end(context)
        return result

    def cancel(self, context):
        """Blender ends the operator (file loaded, window closed): stop the job too."""
        if _active is not None:
            _active.job.cancel()
            context.window_manager.texgen_job.running = False
        self._end(context)

    def _end(self, context):
        global _active
        if _active is not None and _active.timer is not None:
            context.window_manager.event_timer_remove(_active.timer)
        _active = None


class TEXGEN_OT_cancel(bpy.types.Operator):
    """Stop the texture being generated"""
    bl_idname = "texgen.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _active is not None

    def execute(self, context):
        _active.job.cancel()
        context.window_manager.texgen_job.status = "cancelling"
        return {"FINISHED"}


class TEXGEN_OT_seed_previews(bpy.types.Operator):
    """Paint small previews of the next seeds (the corner of each texture at the chosen size)"""
    bl_idname = "texgen.seed_previews"
    bl_label = "Show seeds"

    step: bpy.props.IntProperty(default=0, options={"SKIP_SAVE"},
                                description="Pages to move: -1 the previous seeds, 1 the next")

    @classmethod
    def poll(cls, context):
        return _active is None and context.scene is not None

    def execute(self, context):
        s = context.scene.texgen
        s.preview_page = max(0, s.preview_page + self.step * seeds.GRID)
        try:
            req = properties.request(s, preferences.get(context))
            seeds.show(req, range(s.preview_page, s.preview_page + seeds.GRID))
        except TexgenError as e:
            self.report({"ERROR"}, f"texgen: {e}")
            return {"CANCELLED"}
        _redraw(context)
        return {"FINISHED"}


class TEXGEN_OT_pick_seed(bpy.types.Operator):
    """Generate this seed at full size"""
    bl_idname = "texgen.pick_seed"
    bl_label = "Pick seed"

    seed: bpy.props.IntProperty(min=0)

    @classmethod
    def poll(cls, context):
        return _active is None and context.scene is not None

    def invoke(self, context, event):
        context.scene.texgen.seed = self.seed
        return bpy.ops.texgen.generate("INVOKE_DEFAULT")

    def execute(self, context):
        context.scene.texgen.seed = self.seed
        return bpy.ops.texgen.generate()


class TEXGEN_OT_reset_map_settings(bpy.types.Operator):
    """Set the map settings to the chosen model's defaults"""
    bl_idname = "texgen.reset_map_settings"
    bl_label = "Model defaults"

    def execute(self, context):
        try:
            properties.reset_knobs(context.scene.texgen, force=True)
        except TexgenError as e:
            self.report({"ERROR"}, f"texgen: {e}")
            return {"CANCELLED"}
        return {"FINISHED"}


classes = (TEXGEN_OT_generate, TEXGEN_OT_cancel, TEXGEN_OT_seed_previews, TEXGEN_OT_pick_seed,
           TEXGEN_OT_reset_map_settings)
