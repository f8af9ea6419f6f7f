"""The add-on's one collection of preview icons (bpy.utils.previews): the models' exemplar
thumbnails (panels.py) and the seed browser's previews (seeds.py)."""

import bpy
import bpy.utils.previews

_collection = None


def collection():
    """The collection, or None while the add-on is not registered."""
    return _collection


def register():
    global _collection
    _collection = bpy.utils.previews.new()


def unregister():
    global _collection
    if _collection is not None:
        bpy.utils.previews.remove(_collection)
        _collection = None
