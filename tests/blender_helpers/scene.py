"""One headless Blender session driving the add-on; tests/test_blender.py runs it in a
subprocess (bpy can be imported once per process and keeps its state) and checks what it wrote.

    python tests/blender_helpers/scene.py MODEL.onnx OUT_DIR TEXNET.onnx STYLIZE.onnx

Writes OUT_DIR/result.json (facts about the scene after each step), OUT_DIR/<map>.npy (the
pixels of each material image as Blender holds them, top row first) and OUT_DIR/render.png.
Only records: every assertion is in the test, so a failure there says what differed.
"""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import material, operators  # noqa: E402
from record import CheckingLayout, record  # noqa: E402

MODEL, OUT, TEXNET, STYLIZE = map(Path, sys.argv[1:5])
TEXTURES = OUT / "textures"


def image_pixels(img) -> np.ndarray:
    """(H, W, 4) float32, top row first (Blender stores rows bottom-up)."""
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    return px.reshape(h, w, 4)[::-1]


def describe(mat) -> dict:
    tree = mat.node_tree
    mapping = tree.nodes.get(material.NODE.format("mapping"))
    return {
        "nodes": {n.name: n.bl_idname for n in tree.nodes},
        "links": sorted([l.from_node.name, l.from_socket.identifier,
                         l.to_node.name, l.to_socket.identifier] for l in tree.links),
        "images": {m: {"name": n.image.name, "colorspace": n.image.colorspace_settings.name,
                       "path": bpy.path.abspath(n.image.filepath),
                       "packed": bool(n.image.packed_file),
                       "extension": n.extension}
                   for m in material.ROWS
                   if (n := tree.nodes.get(material.NODE.format(m))) is not None},
        "mapping_scale": list(mapping.inputs["Scale"].default_value) if mapping else None,
        "seed": mat.get("texgen_seed"),
    }


def texgen_state(plane) -> dict:
    return {
        "materials": sorted(m.name for m in bpy.data.materials if m.get(material.TAG)),
        "image_blocks": sorted(i.name for i in bpy.data.images if i.get(material.TAG)),
        "plane_slots": [s.material.name if s.material else None for s in plane.material_slots],
    }


def generate(**settings) -> str:
    """bpy.ops.texgen.generate() (headless: its synchronous execute()); its error or ""."""
    s = bpy.context.scene.texgen
    for k, v in settings.items():
        setattr(s, k, v)
    try:
        bpy.ops.texgen.generate()
        return ""
    except RuntimeError as e:               # an operator's ERROR report raises here
        return str(e)


def threaded(cancel_after: float | None = None) -> dict:
    """The path the Generate button takes: worker thread + operators.step() as the timer."""
    reports = []
    run = operators.prepare(bpy.context)
    run.job.start()
    t0 = time.perf_counter()
    cancelled_at = None
    while (r := operators.step(run, bpy.context, lambda k, t: reports.append(t))) is None:
        if cancel_after is not None and cancelled_at is None and run.job.fraction > cancel_after:
            run.job.cancel()
            cancelled_at = run.job.fraction
        time.sleep(0.02)
    return {"result": sorted(r), "reports": reports, "cancelled_at": cancelled_at,
            "seconds": time.perf_counter() - t0}


def draw_panels() -> list[str]:
    """Draw the panel in each state it has; the log of what it showed (and any bad name)."""
    from blender_addon import panels
    log = []
    s, state = bpy.context.scene.texgen, bpy.context.window_manager.texgen_job
    for source in ("BUILTIN", "FOLDER", "FILE"):
        s.model_source = source
        panels.draw_main(CheckingLayout(log), bpy.context)
    state.running, state.progress, state.status = True, 0.5, "painting on CPU"
    panels.draw_main(CheckingLayout(log), bpy.context)
    state.running = False
    panels.draw_map_settings(CheckingLayout(log), bpy.context)
    return log


def main(result: dict) -> None:
    # register / unregister / register again
    blender_addon.register()
    result["registered"] = [hasattr(bpy.types, "TEXGEN_OT_generate"),
                            hasattr(bpy.types.Scene, "texgen"),
                            hasattr(bpy.types, "TEXGEN_PT_view_3d_main"),
                            hasattr(bpy.types, "TEXGEN_PT_node_editor_main")]
    blender_addon.unregister()
    result["unregistered"] = [hasattr(bpy.types, "TEXGEN_OT_generate"),
                              hasattr(bpy.types.Scene, "texgen"),
                              hasattr(bpy.types, "TEXGEN_PT_view_3d_main")]
    blender_addon.register()

    bpy.ops.wm.read_factory_settings(use_empty=True)    # no default cube over the plane
    blender_addon.preferences.DEFAULTS.texture_folder = str(TEXTURES)
    blender_addon.preferences.DEFAULTS.device = "cpu"
    bpy.ops.mesh.primitive_plane_add(size=2)
    plane = bpy.context.active_object

    # generate on the plane: every map
    result["first_error"] = generate(model_source="FILE", model_file=str(MODEL), size="1024",
                                     seed=5, maps={"color", "normal", "roughness", "height", "ao"})
    mat = plane.active_material
    result["first"] = {**describe(mat), **texgen_state(plane)}
    result["panel"] = draw_panels()
    for m, info in result["first"]["images"].items():
        img = bpy.data.images[info["name"]]
        px = image_pixels(img)
        np.save(OUT / f"{m}.npy", px[..., :3] if m in ("color", "normal") else px[..., 0])
        result["first"]["images"][m]["is_float"] = img.is_float

    # a 64 x 64 Cycles render of the plane from above, lit by a sun
    scene = bpy.context.scene
    bpy.ops.object.camera_add(location=(0, 0, 2.6), rotation=(0, 0, 0))
    scene.camera = bpy.context.active_object
    bpy.ops.object.light_add(type="SUN", location=(0, 0, 5))
    bpy.context.active_object.data.energy = 3.0
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.render.resolution_x = scene.render.resolution_y = 64
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(OUT / "render.png")
    bpy.ops.render.render(write_still=True)

    # re-generate on the plane (selected again): another seed, fewer maps, another repeat
    for o in bpy.context.view_layer.objects:
        o.select_set(o == plane)
    bpy.context.view_layer.objects.active = plane
    result["second_error"] = generate(seed=6, maps={"color", "normal", "height"}, repeat=3.0)
    result["second"] = {**describe(plane.active_material), **texgen_state(plane)}
    np.save(OUT / "color_seed6.npy", image_pixels(bpy.data.images["texgen color"])[..., :3])

    # failures must leave the material as it was
    bad = OUT / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07" + bytes(range(256)) * 40)
    result["corrupt_error"] = generate(model_file=str(bad), seed=9)
    result["missing_error"] = generate(model_file=str(OUT / "nowhere.onnx"), seed=9)
    result["after_errors"] = {**describe(plane.active_material), **texgen_state(plane)}

    # a Texture Networks export paints like a PSGAN one; a stylisation export is refused
    result["texnet_error"] = generate(model_file=str(TEXNET), seed=4, maps={"color", "normal"})
    result["texnet"] = {**describe(plane.active_material), **texgen_state(plane)}
    np.save(OUT / "texnet_color.npy", image_pixels(bpy.data.images["texgen color"])[..., :3])
    result["stylize_error"] = generate(model_file=str(STYLIZE), seed=4,
                                       maps={"color", "normal", "height"})
    result["after_stylize"] = {**describe(plane.active_material), **texgen_state(plane)}

    # the threaded path: cancelled mid-way, then run to the end
    generate(model_file=str(MODEL), seed=9)     # back to a good model (synchronous)
    bpy.context.scene.texgen.size = "4096"
    bpy.context.scene.texgen.seed = 10
    result["cancelled"] = threaded(cancel_after=0.05)
    result["after_cancel"] = {**describe(plane.active_material), **texgen_state(plane)}
    result["scratch_left"] = [p.name for p in TEXTURES.iterdir() if p.name.startswith(".")]
    bpy.context.scene.texgen.size = "1024"
    bpy.context.scene.texgen.seed = 11
    result["threaded"] = threaded()
    result["after_threaded"] = {**describe(plane.active_material), **texgen_state(plane)}

    blender_addon.unregister()


if __name__ == "__main__":
    record(main, OUT)
