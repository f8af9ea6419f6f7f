"""One headless Blender session driving the add-on; tests/test_blender.py runs it in a
subprocess (bpy can be imported once per process and keeps its state) and checks what it wrote.

    python tests/blender_helpers/scene.py MODEL.onnx OUT_DIR TEXNET.onnx STYLIZE.onnx MANIFOLD.onnx

Writes OUT_DIR/result.json (facts about the scene after each step), OUT_DIR/<map>.npy (the
pixels of each material image as Blender holds them, top row first), OUT_DIR/render.png and
OUT_DIR/previews.npy. Only records: every assertion is in the test, so a failure there says
what differed.
"""

import hashlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import icons, material, operators, seeds, uvs  # noqa: E402
from record import CheckingLayout, image_pixels, record, render_from_above  # noqa: E402

MODEL, OUT, TEXNET, STYLIZE, MANIFOLD = map(Path, sys.argv[1:6])
TEXTURES = OUT / "textures"


def describe(mat) -> dict:
    tree = mat.node_tree
    mapping = tree.nodes.get(material.NODE.format("mapping"))
    coords = tree.nodes.get(material.NODE.format("coordinates"))
    nmap = tree.nodes.get(material.NODE.format("normal map"))
    return {
        "uv_map": [getattr(coords, "uv_map", None), getattr(nmap, "uv_map", None)],
        "tile_metres": mat.get("texgen_tile_metres"),
        "nodes": {n.name: n.bl_idname for n in tree.nodes},
        "links": sorted([l.from_node.name, l.from_socket.identifier,
                         l.to_node.name, l.to_socket.identifier] for l in tree.links),
        "images": {m: {"name": n.image.name, "colorspace": n.image.colorspace_settings.name,
                       "path": bpy.path.abspath(n.image.filepath),
                       "packed": bool(n.image.packed_file), "raw_path": n.image.filepath,
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
    state.device_note = "CUDA skipped: libcublasLt.so.13: cannot open shared object file"
    panels.draw_main(CheckingLayout(log), bpy.context)
    state.device_note = ""
    s.use_udim = True                           # the UDIM row and its notes
    panels.draw_main(CheckingLayout(log), bpy.context)
    s.use_udim = False
    panels.draw_map_settings(CheckingLayout(log), bpy.context)
    panels.draw_seeds(CheckingLayout(log), bpy.context)
    model_file = s.model_file                   # a manifold: Morph is offered
    s.model_file = str(MANIFOLD)
    panels.draw_main(CheckingLayout(log), bpy.context)
    s.model_file = model_file
    return log


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def select(*objs) -> None:
    for o in bpy.context.view_layer.objects:
        o.select_set(o in objs)
    bpy.context.view_layer.objects.active = objs[0]


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
    s = bpy.context.scene.texgen
    result["knobs_before"] = {"height_invert": s.height_invert, "knobs_model": s.knobs_model}

    # generate on the plane: every map
    result["first_error"] = generate(model_source="FILE", model_file=str(MODEL), size="1024",
                                     seed=5, maps={"color", "normal", "roughness", "height", "ao"})
    mat = plane.active_material
    result["first"] = {**describe(mat), **texgen_state(plane)}
    result["knobs_after"] = {"height_invert": s.height_invert,
                             "roughness_invert": s.roughness_invert,
                             "knobs_model": s.knobs_model}
    result["last_run"] = bpy.context.window_manager.texgen_job.last_run
    result["plane_uvs"] = [l.name for l in plane.data.uv_layers]
    result["plane_texgen_uv"] = uvs._array(plane.data.uv_layers[uvs.UV_NAME].uv, "vector", 2).tolist()
    for m, info in result["first"]["images"].items():
        img = bpy.data.images[info["name"]]
        px = image_pixels(img)
        np.save(OUT / f"{m}.npy", px[..., :3] if m in ("color", "normal") else px[..., 0])
        result["first"]["images"][m]["is_float"] = img.is_float

    # the seed browser: nine previews through the same painter and canvas
    t0 = time.perf_counter()
    bpy.ops.texgen.seed_previews(step=0)
    result["previews_seconds"] = time.perf_counter() - t0
    k = seeds.key(MODEL, 1024, 1024, None)
    result["previews_seeds"] = [seed for seed, _ in seeds.grid(k)]
    pix = []
    for seed in result["previews_seeds"]:
        icon = icons.collection()[seeds.icon_name(k, seed)]
        w, h = icon.image_size
        px = np.empty(w * h * 4, np.float32)
        icon.image_pixels_float.foreach_get(px)
        pix.append(px.reshape(h, w, 4)[::-1, :, :3])
    np.save(OUT / "previews.npy", np.stack(pix))
    bpy.ops.texgen.seed_previews(step=1)
    result["previews_next"] = [seed for seed, _ in seeds.grid(k)]
    bpy.ops.texgen.seed_previews(step=-1)
    result["panel"] = draw_panels()

    render_from_above(OUT / "render.png")      # a 64 x 64 Cycles render of the plane

    # re-generate on the plane (selected again): another seed, fewer maps, another scale
    select(plane)
    result["second_error"] = generate(seed=6, maps={"color", "normal", "height"},
                                      texture_scale=3.0)
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
    s.size = "4096"
    s.seed = 10
    result["cancelled"] = threaded(cancel_after=0.05)
    result["after_cancel"] = {**describe(plane.active_material), **texgen_state(plane)}
    result["scratch_left"] = [p.name for p in TEXTURES.iterdir() if p.name.startswith(".")]
    s.size = "1024"
    s.seed = 11
    result["threaded"] = threaded()
    result["after_threaded"] = {**describe(plane.active_material), **texgen_state(plane)}

    # packed into the .blend on request
    result["packed_error"] = generate(seed=12, pack_images=True)
    result["packed"] = describe(plane.active_material)
    s.pack_images = False

    # real-world size on other shapes: a default-sized cube (its UVs lie sideways on its
    # walls), a cube scaled 3x without UVs, a UV sphere (stretched UVs)
    bpy.ops.mesh.primitive_cube_add(size=2, location=(4, 0, 0))
    cube = bpy.context.active_object
    bpy.ops.mesh.primitive_cube_add(size=2, location=(8, 0, 0))
    big = bpy.context.active_object
    big.scale = (3, 3, 3)
    big.data.uv_layers.remove(big.data.uv_layers[0])
    bpy.ops.mesh.primitive_uv_sphere_add(location=(12, 0, 0))
    sphere = bpy.context.active_object
    bpy.context.view_layer.update()
    select(cube, big, sphere)
    result["shapes_error"] = generate(material_name="shapes", seed=2, size="1024",
                                      texture_scale=1.0)
    result["shapes"] = {}
    for o in (cube, big, sphere):
        uv = uvs._array(o.data.uv_layers[uvs.UV_NAME].uv, "vector", 2)
        co = uvs._array(o.data.vertices, "co", 3)[uvs._array(o.data.loops, "vertex_index", 1,
                                                              np.int32)]
        normals = uvs._array(o.data.polygons, "normal", 3)[np.repeat(
            np.arange(len(o.data.polygons)), uvs._array(o.data.polygons, "loop_total", 1, np.int32))]
        result["shapes"][o.name] = {"uv": uv.tolist(), "co": co.tolist(), "normal": normals.tolist(),
                                    "scale": list(o.scale),
                                    "material": o.active_material.name}
    result["shapes_material"] = describe(bpy.data.materials["shapes"])
    select(plane)
    s.material_name = "texgen"

    # a UDIM set of 2 x 2 tiles of 1024 px on the plane, a tenth of the real size: the plane
    # shows the set about three times over (its coordinates wrap around the set)
    result["udim_error"] = generate(seed=13, size="1024", use_udim=True, udim_cols=2,
                                    udim_rows=2, maps={"color", "normal"}, texture_scale=0.1)
    mat = plane.active_material
    img = bpy.data.images["texgen color"]
    pattern = Path(bpy.path.abspath(img.filepath))
    result["udim"] = {**describe(mat), "source": img.source,
                      "tiles": sorted(t.number for t in img.tiles),
                      "tile_sizes": sorted(list(t.size) for t in img.tiles),
                      "files": sorted(str(p) for p in pattern.parent.glob(
                          pattern.name.replace("<UDIM>", "*"))),
                      "wrap": list(mat.node_tree.nodes[material.NODE.format("udim wrap")]
                                   .inputs[1].default_value),
                      "udim": mat.get("texgen_udim")}
    render_from_above(OUT / "render_udim.png")
    # the control: without the wrap, the plane beyond the set reads tiles that do not exist
    tree = mat.node_tree
    tree.links.new(tree.nodes[material.NODE.format("mapping")].outputs["Vector"],
                   tree.nodes[material.NODE.format("color")].inputs["Vector"])
    bpy.context.scene.render.filepath = str(OUT / "render_udim_nowrap.png")
    bpy.ops.render.render(write_still=True)
    # and back to one image: the wrap goes
    result["after_udim_error"] = generate(seed=13, use_udim=False, texture_scale=1.0)
    result["after_udim"] = {**describe(plane.active_material),
                            "source": bpy.data.images["texgen color"].source}

    # an unsaved session: its maps go to the user folder; Save As takes them along
    session_files(result)
    blender_addon.unregister()


def session_files(result: dict) -> None:
    """Unsaved sessions and saved .blend files never show each other's pixels."""
    blender_addon.preferences.DEFAULTS.texture_folder = ""      # the defaults: user folder
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_plane_add(size=2)
    result["unsaved_error"] = generate(model_source="FILE", model_file=str(MODEL), size="1024",
                                       seed=3, maps={"color", "height"}, material_name="wall")
    img = bpy.data.images["wall color"]
    result["unsaved_path"] = bpy.path.abspath(img.filepath)
    np.save(OUT / "wall_seed3.npy", image_pixels(img)[..., :3])
    project = OUT / "project"
    project.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "scene.blend"))
    result["saved_raw_path"] = img.filepath
    result["saved_abspath"] = bpy.path.abspath(img.filepath)
    result["saved_sha"] = sha(bpy.path.abspath(img.filepath))
    # another unsaved session makes a material of the same name with another seed
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_plane_add(size=2)
    result["other_error"] = generate(model_source="FILE", model_file=str(MODEL), size="1024",
                                     seed=0, maps={"color", "height"}, material_name="wall")
    result["other_path"] = bpy.path.abspath(bpy.data.images["wall color"].filepath)
    # the saved file still shows seed 3, from its own folder
    bpy.ops.wm.open_mainfile(filepath=str(project / "scene.blend"))
    img = bpy.data.images["wall color"]
    result["reopened_raw_path"] = img.filepath
    result["reopened_sha"] = sha(bpy.path.abspath(img.filepath))
    np.save(OUT / "wall_reopened.npy", image_pixels(img)[..., :3])


if __name__ == "__main__":
    record(main, OUT)
