"""From map files to a Principled BSDF material on objects: the only module that builds bpy data.

Runs on the main thread. Images are loaded from the PNGs job.py wrote (bpy.data.images.load
is lazy: pixels are read when something first draws or renders them, so this step costs a few
milliseconds even at 8K) and referenced by path, not packed, so a .blend stays small.

The node tree, the way Blender's own Node Wrangler "Principled Setup" builds one:

    UV Map "texgen" (metres: uvs.py) -> Mapping (Scale = 1 / (tile metres x Scale)) -> every
                                        Image Texture: a tile of W px covers W x texel size
                                        metres, so bricks keep their real size at any W
                                        (a UDIM set: -> Vector Math Wrap into [0, columns) x
                                        [0, rows) tiles -> tiled Image Textures)
    color     (sRGB)      -> Base Color
    normal    (Non-Color) -> Normal Map (tangent space of the "texgen" UV map; maps are
                             OpenGL, as Blender) -> Normal
    roughness (Non-Color) -> Roughness
    height    (Non-Color) -> Displacement (midlevel 0.5) -> Material Output Displacement
    ao        (Non-Color) -> not connected: Cycles and EEVEE compute occlusion themselves, and
                             multiplying baked AO into the base colour darkens crevices twice;
                             it is there for a Mix/Multiply when an artist wants the look (or
                             for baking/export), as Node Wrangler leaves it.

Re-generating finds the material by name and updates it in place: its images get the new files,
and only texgen's own nodes (named "texgen ...") are added, moved or removed, so settings an
artist changed on the Principled BSDF or nodes they added survive.

Images show their files through paths relative to the .blend once it is saved (files.py
moves maps of an unsaved session beside it on Save As), or are packed into it on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy

from texgen.runtime.maps import colour_space

from . import uvs

TAG = "texgen"              # custom property on materials and images that texgen made
NODE = "texgen {}"          # names of texgen's nodes in the tree

BSDF_INPUT = {"color": "Base Color", "roughness": "Roughness"}
# rows of the image nodes, top to bottom, for a readable tree
ROWS = ("color", "ao", "roughness", "normal", "height")
LABELS = {"color": "Color", "ao": "AO (not connected)", "roughness": "Roughness",
          "normal": "Normal", "height": "Height", "udim wrap": "UDIM set: wrap"}


@dataclass
class Look:
    """Material settings that are not baked into the maps (they update live)."""
    scale: float = 1.0                  # texture size on the surface: 1 = the model's real size
    displacement_scale: float = 0.02    # metres of relief for the height range 0..1
    tile_metres: float | None = None    # metres one repeat covers (texel size x px); None:
                                        # the value the material recorded when it was made
    pack: bool = False                  # images packed into the .blend


def blender_colour_space(map_name: str) -> str:
    return "sRGB" if colour_space(map_name) == "sRGB" else "Non-Color"


def image_name(material: str, map_name: str) -> str:
    return f"{material} {map_name}"


def load_image(name: str, path: Path, map_name: str, pack: bool = False,
               tiled: bool = False) -> bpy.types.Image:
    """The image datablock `name` showing `path`: re-pointed and reloaded if texgen made it
    before, else loaded fresh. The colour space is set before any pixel is read (loading is
    lazy), so Blender never decodes data maps as sRGB. tiled: path is tile 1001 of a UDIM
    set: the image becomes a tiled one (source 'TILED'), which finds the set's other tiles
    beside it and names them with the <UDIM> token."""
    path = Path(path)
    img = bpy.data.images.get(name)
    if img is not None and img.get(TAG) and img.source in ("FILE", "TILED"):
        img.colorspace_settings.name = blender_colour_space(map_name)
        if img.packed_file is not None:
            img.unpack(method="REMOVE")
        img.source = "FILE"             # re-pointed at tile 1001 (or the file), then tiled
        img.filepath = _blend_relative(path)
        if tiled:
            img.source = "TILED"
        img.reload()                    # the file may be the same path with new pixels
    else:
        img = bpy.data.images.load(str(path), check_existing=False)
        img.name = name
        img.colorspace_settings.name = blender_colour_space(map_name)
        img.filepath = _blend_relative(path)
        if tiled:
            img.source = "TILED"
        img[TAG] = True
    img.alpha_mode = "NONE"             # opaque maps: no straight/premultiplied guessing
    if pack:
        img.pack()                      # the file's bytes into the .blend: nothing to lose
    elif img.packed_file is not None:
        img.unpack(method="REMOVE")     # packed before, a file now: show the file
        img.filepath = _blend_relative(path)
    return img


def _blend_relative(path: Path) -> str:
    """//relative to the saved .blend when possible (the project folder moves as one)."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(str(path))
        except ValueError:              # another drive on Windows
            pass
    return str(path)


def find_material(name: str) -> bpy.types.Material | None:
    mat = bpy.data.materials.get(name)
    return mat if mat is not None and mat.get(TAG) else None


def apply(files: dict[str, Path], objects, name: str = "texgen", look: Look | None = None,
          about: dict | None = None,
          udim: tuple[int, int] | None = None) -> tuple[bpy.types.Material, dict[str, str]]:
    """Build (or update) material `name` from map files {map: path} and give it to `objects`
    (their active slot; a slot is added when they have none), each with its "texgen" UV map in
    metres (uvs.py). Returns the material and {object name: "uv" | "box" | ""}, how each got
    its coordinates.

    about: settings to record on the material (model, seed, size) for the user and re-runs.
    udim: (columns, rows) when files are the 1001 tiles of UDIM sets: tiled images, and the
    coordinates wrap around the whole set (look.tile_metres is then one tile's).
    """
    look = look or Look()
    # every image first (lazily: only a missing file fails here), before the material changes
    images = {m: load_image(image_name(name, m), p, m, look.pack, tiled=udim is not None)
              for m, p in files.items()}
    # a material of that name that texgen did not make is adopted: its Principled BSDF gets
    # the maps (the artist named it in the panel), its other nodes stay
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    if mat.node_tree is None:           # Blender < 5 creates materials without nodes
        mat.use_nodes = True
    if look.tile_metres:
        mat[f"{TAG}_tile_metres"] = look.tile_metres
    build_tree(mat.node_tree, images, look, mat.get(f"{TAG}_tile_metres", 1.0), udim)
    mat[TAG] = True
    for k, v in (about or {}).items():
        mat[f"{TAG}_{k}"] = v
    unit = bpy.context.scene.unit_settings.scale_length if bpy.context.scene else 1.0
    projections = {}
    for obj in objects:
        if assign(obj, mat):
            projections[obj.name] = uvs.apply(obj, unit)
    return mat, projections


def assign(obj, mat) -> bool:
    """Put `mat` in the object's active material slot; False for objects that take none."""
    if getattr(obj, "data", None) is None or not hasattr(obj.data, "materials"):
        return False
    if not obj.material_slots:
        obj.data.materials.append(mat)
    else:
        obj.active_material = mat
    return True


def _node(tree, key: str, kind: str, location):
    """texgen's node `key` in the tree, created (or replaced, if something else took the name)."""
    node = tree.nodes.get(NODE.format(key))
    if node is not None and node.bl_idname != kind:
        tree.nodes.remove(node)
        node = None
    if node is None:
        node = tree.nodes.new(kind)
        node.name = NODE.format(key)
    node.label = LABELS.get(key, node.label)
    node.location = location
    return node


def _output_and_bsdf(tree):
    out = next((n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial"
                and n.is_active_output), None)
    out = out or tree.nodes.new("ShaderNodeOutputMaterial")
    bsdf = next((n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)
    if bsdf is None:
        bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
        bsdf.location = (out.location.x - 300, out.location.y)
    if not out.inputs["Surface"].is_linked or out.inputs["Surface"].links[0].from_node != bsdf:
        tree.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    return out, bsdf


def build_tree(tree, images: dict, look: Look, tile_metres: float,
               udim: tuple[int, int] | None = None) -> None:
    """Wire the images into the Principled BSDF (see the module docstring). udim: (columns,
    rows) of tiled images: a Vector Math Wrap after the Mapping keeps the coordinates (in
    tiles) inside the set, so it repeats as a whole over a surface of any size."""
    out, bsdf = _output_and_bsdf(tree)
    x0, y0 = bsdf.location.x, bsdf.location.y
    coord = _node(tree, "coordinates", "ShaderNodeUVMap", (x0 - 1300, y0 - 200))
    coord.uv_map = uvs.UV_NAME
    mapping = _node(tree, "mapping", "ShaderNodeMapping", (x0 - 1100, y0 - 200))
    tree.links.new(coord.outputs["UV"], mapping.inputs["Vector"])
    set_scale(mapping, tile_metres * look.scale)
    vector = mapping.outputs["Vector"]
    if udim:
        wrap = _node(tree, "udim wrap", "ShaderNodeVectorMath", (x0 - 850, y0 - 200))
        wrap.operation = "WRAP"
        tree.links.new(vector, wrap.inputs[0])
        wrap.inputs[1].default_value = (udim[0], udim[1], 1.0)      # max
        wrap.inputs[2].default_value = (0.0, 0.0, 0.0)              # min
        vector = wrap.outputs["Vector"]
    elif (old := tree.nodes.get(NODE.format("udim wrap"))) is not None:
        tree.nodes.remove(old)

    for row, m in enumerate(k for k in ROWS if k in images):
        tex = _node(tree, m, "ShaderNodeTexImage", (x0 - 600, y0 - 280 * row))
        tex.image = images[m]
        tex.extension = "REPEAT"        # the texture wraps: it is seamless
        tex.interpolation = "Linear"
        tree.links.new(vector, tex.inputs["Vector"])
        if m in BSDF_INPUT:
            tree.links.new(tex.outputs["Color"], bsdf.inputs[BSDF_INPUT[m]])
        elif m == "normal":
            nmap = _node(tree, "normal map", "ShaderNodeNormalMap", (x0 - 250, tex.location.y))
            nmap.space = "TANGENT"
            nmap.uv_map = uvs.UV_NAME
            tree.links.new(tex.outputs["Color"], nmap.inputs["Color"])
            tree.links.new(nmap.outputs["Normal"], bsdf.inputs["Normal"])
        elif m == "height":
            disp = _node(tree, "displacement", "ShaderNodeDisplacement",
                         (out.location.x, out.location.y - 250))
            disp.inputs["Midlevel"].default_value = 0.5
            disp.inputs["Scale"].default_value = look.displacement_scale
            tree.links.new(tex.outputs["Color"], disp.inputs["Height"])
            tree.links.new(disp.outputs["Displacement"], out.inputs["Displacement"])

    # maps not asked for this time: drop their nodes (and the links go with them)
    gone = [k for k in ROWS if k not in images]
    gone += ["normal map"] if "normal" not in images else []
    gone += ["displacement"] if "height" not in images else []
    for k in gone:
        node = tree.nodes.get(NODE.format(k))
        if node is not None:
            img = getattr(node, "image", None)
            tree.nodes.remove(node)
            if img is not None and img.get(TAG) and img.users == 0:
                bpy.data.images.remove(img)     # texgen's, and nothing else shows it


def set_scale(mapping, metres: float) -> None:
    """One repeat of the texture over `metres` of the "texgen" UV map (which is in metres)."""
    mapping.vector_type = "POINT"
    k = 1.0 / max(metres, 1e-9)
    mapping.inputs["Scale"].default_value = (k, k, 1.0)


def update_look(mat, look: Look) -> None:
    """Push the live settings into an existing texgen material (panel edits call this)."""
    tree = mat.node_tree
    if tree is None:
        return
    if (n := tree.nodes.get(NODE.format("mapping"))) is not None:
        set_scale(n, mat.get(f"{TAG}_tile_metres", 1.0) * look.scale)
    if (n := tree.nodes.get(NODE.format("displacement"))) is not None:
        n.inputs["Scale"].default_value = look.displacement_scale
