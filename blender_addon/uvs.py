"""Real-world texture coordinates: a UV map named "texgen", in metres, on each mesh.

The material (material.py) reads this UV map and scales it by the texture's own size in
metres (texel size x pixels), so a brick is as big as the model learned it, whatever the
resolution and whatever the object's UV layout or scale:

* an object whose UVs are usable gets a copy of them, scaled so one unit is one metre of its
  surface (the area-weighted median of sqrt(surface area / UV area) over its triangles);
* an object without UVs, or whose UVs are stretched or lie sideways on its walls, gets box
  projection in object space: each face takes the two object axes across its dominant normal
  axis, oriented so that "up" in the texture is +Z on walls and the texture is never mirrored.

"Stretched": over 10 % of the surface (by area) has a scale more than 25 % off the median, or
is squashed in one direction by over 25 % (the ratio of the UV-to-surface Jacobian's singular
values). "Sideways": on faces within 60 degrees of vertical, the texture's up direction (+V)
is on average more than 45 degrees from the object's Z axis, e.g. the default cube's side
faces, whose bricks would stand on end.

Lengths include the object's scale (from its world matrix) and the scene's unit scale, so a
scaled-up cube shows more bricks, not bigger ones. numpy over foreach_get arrays: a
million-triangle mesh takes about a second.
"""

from __future__ import annotations

import numpy as np

UV_NAME = "texgen"
MAX_STRETCHED_SHARE = 0.10      # of the area
SCALE_TOLERANCE = 1.25          # per-triangle scale vs the median, and anisotropy
UPRIGHT_COS = np.cos(np.radians(45))
WALL_NZ = np.sin(np.radians(30))    # |n_z| below this: a wall (within 60 degrees of vertical)


def _array(collection, attr: str, width: int, dtype=np.float32) -> np.ndarray:
    a = np.empty(len(collection) * width, dtype)
    collection.foreach_get(attr, a)
    return a.reshape(-1, width) if width > 1 else a


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, cw[-1] / 2)])


def uv_assessment(corners: np.ndarray, uvs: np.ndarray, normals: np.ndarray) -> dict:
    """How usable a mesh's UVs are, from its triangles: corners (T, 3, 3) in metres, uvs
    (T, 3, 2), normals (T, 3). Returns {"metres_per_uv", "stretched", "sideways"} (shares of
    the area, 0..1) and "usable"."""
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    d1, d2 = uvs[:, 1] - uvs[:, 0], uvs[:, 2] - uvs[:, 0]
    area = 0.5 * np.linalg.norm(np.cross(e1, e2), axis=1)
    det = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    ok = (np.abs(det) > 1e-12) & (area > 0)
    total = float(area.sum())
    if total <= 0 or area[ok].sum() < 0.5 * total:      # most of it has no UV area at all
        return {"metres_per_uv": 0.0, "stretched": 1.0, "sideways": 0.0, "usable": False}
    e1, e2, d1, d2, det, a, n = e1[ok], e2[ok], d1[ok], d2[ok], det[ok], area[ok], normals[ok]
    # J = [e1 e2] [d1 d2]^-1: columns dP/du and dP/dv, surface metres per UV unit
    inv = np.stack([np.stack([d2[:, 1], -d2[:, 0]], 1), np.stack([-d1[:, 1], d1[:, 0]], 1)], 1)
    inv /= det[:, None, None]                           # inv[t] = [[d2y, -d2x], [-d1y, d1x]] / det
    edges = np.stack([e1, e2], axis=2)                  # (T, 3, 2)
    J = edges @ inv
    s = np.linalg.svd(J, compute_uv=False)              # (T, 2), descending
    scale = np.sqrt(s[:, 0] * s[:, 1])
    median = _weighted_median(scale, a)
    bad = (np.maximum(scale / median, median / scale) > SCALE_TOLERANCE) | \
          (s[:, 0] > SCALE_TOLERANCE * s[:, 1])
    stretched = float(a[bad].sum() / a.sum())
    walls = np.abs(n[:, 2]) < WALL_NZ
    sideways = 0.0
    if walls.any():
        up = J[:, :, 1] / np.maximum(np.linalg.norm(J[:, :, 1], axis=1, keepdims=True), 1e-12)
        upright = np.abs(up[walls, 2])
        sideways = float(a[walls][upright < UPRIGHT_COS].sum() / a[walls].sum())
    usable = stretched <= MAX_STRETCHED_SHARE and sideways <= 0.5
    return {"metres_per_uv": median, "stretched": stretched, "sideways": sideways,
            "usable": usable}


def box_uvs(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Box projection: (N, 2) UVs in metres for face corners at points (N, 3), metres in object
    space, on faces with normals (N, 3). The dominant normal axis picks the plane; the signs
    keep the texture unmirrored as seen from outside, with +V up (+Z) on walls."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    axis = np.abs(normals).argmax(axis=1)
    sign = np.sign(normals[np.arange(len(normals)), axis])
    sign[sign == 0] = 1
    u = np.where(axis == 0, sign * y, np.where(axis == 1, -sign * x, sign * x))
    v = np.where(axis == 2, y, z)
    return np.stack([u, v], axis=1).astype(np.float32)


def apply(obj, unit_scale: float = 1.0) -> str:
    """Write the "texgen" UV map of a mesh object (see the module docstring): "uv" when its own
    UVs were scaled into it, "box" when box-projected, "" for objects that are not meshes."""
    me = getattr(obj, "data", None)
    if obj.type != "MESH" or me is None or not len(me.polygons):
        return ""
    scale = np.abs(np.array(obj.matrix_world.to_scale(), np.float32)) * np.float32(unit_scale)
    co = _array(me.vertices, "co", 3) * scale
    loop_vert = _array(me.loops, "vertex_index", 1, np.int32)
    # polygon normals in the scaled space (a scaled cube's faces keep their axes)
    poly_normal = _array(me.polygons, "normal", 3) / np.where(scale > 0, scale, 1)
    poly_normal /= np.maximum(np.linalg.norm(poly_normal, axis=1, keepdims=True), 1e-12)
    poly_of_loop = np.repeat(np.arange(len(me.polygons)),
                             _array(me.polygons, "loop_total", 1, np.int32))
    # the user's UV map: the one set for rendering (what their materials see)
    source = next((l for l in me.uv_layers if l.active_render and l.name != UV_NAME), None)
    source = source or next((l for l in me.uv_layers if l.name != UV_NAME), None)
    mode = "box"
    if source is not None:
        me.calc_loop_triangles()
        tri_loops = _array(me.loop_triangles, "loops", 3, np.int32)
        tri_poly = _array(me.loop_triangles, "polygon_index", 1, np.int32)
        uv = _array(source.uv, "vector", 2)
        verdict = uv_assessment(co[loop_vert[tri_loops]], uv[tri_loops], poly_normal[tri_poly])
        if verdict["usable"]:
            mode, uvs = "uv", uv * np.float32(verdict["metres_per_uv"])
    if mode == "box":
        uvs = box_uvs(co[loop_vert], poly_normal[poly_of_loop])
    layer = me.uv_layers.get(UV_NAME) or me.uv_layers.new(name=UV_NAME, do_init=False)
    layer.uv.foreach_set("vector", uvs.astype(np.float32).ravel())
    me.update()
    return mode
