"""The add-on's real-world texture coordinates (blender_addon/uvs.py), on triangles made here:
no Blender needed for the geometry."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location(
    "texgen_addon_uvs", Path(__file__).resolve().parent.parent / "blender_addon" / "uvs.py")
uvs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(uvs)


def wall(width=4.0, height=3.0, n=4):
    """A vertical wall in the XZ plane (normal -Y) as 2 n^2 triangles: corners (T, 3, 3)."""
    xs, zs = np.linspace(0, width, n + 1), np.linspace(0, height, n + 1)
    tris = []
    for i in range(n):
        for j in range(n):
            a, b = (xs[i], 0, zs[j]), (xs[i + 1], 0, zs[j])
            c, d = (xs[i + 1], 0, zs[j + 1]), (xs[i], 0, zs[j + 1])
            tris += [(a, b, c), (a, c, d)]
    corners = np.array(tris, np.float32)
    normals = np.tile([0.0, -1.0, 0.0], (len(corners), 1)).astype(np.float32)
    return corners, normals


def test_good_uvs_give_metres_per_uv_unit():
    corners, normals = wall()
    uv = corners[..., [0, 2]] / 8.0                  # 1 UV unit = 8 m, upright
    v = uvs.uv_assessment(corners, uv, normals)
    assert v["usable"] and v["metres_per_uv"] == pytest.approx(8.0)
    assert v["stretched"] == 0 and v["sideways"] == 0


def test_sideways_and_stretched_uvs_are_not_used():
    corners, normals = wall()
    sideways = corners[..., [2, 0]] / 8.0            # texture up runs along the wall
    v = uvs.uv_assessment(corners, sideways, normals)
    assert not v["usable"] and v["sideways"] == 1.0
    squashed = corners[..., [0, 2]] * np.array([1 / 8.0, 1 / 2.0], np.float32)
    v = uvs.uv_assessment(corners, squashed, normals)
    assert not v["usable"] and v["stretched"] == 1.0
    flat = np.zeros(corners.shape[:2] + (2,), np.float32)       # no UV area at all
    assert not uvs.uv_assessment(corners, flat, normals)["usable"]


def test_box_projection_keeps_walls_upright_and_unmirrored():
    pts = np.array([[1, 2, 3]] * 6, np.float32)
    normals = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                       np.float32)
    uv = uvs.box_uvs(pts, normals)
    # walls: V is Z; U runs to the right as seen from outside
    assert uv[:4, 1].tolist() == [3, 3, 3, 3]
    assert uv[:4, 0].tolist() == [2, -2, -1, 1]
    assert uv[4].tolist() == [1, 2] and uv[5].tolist() == [-1, 2]
