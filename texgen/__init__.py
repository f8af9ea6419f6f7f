"""texgen: learn seamless textures from photos and paint them at any size.

Data flows photo -> data -> models -> train -> checkpoint -> export (ONNX) -> runtime -> maps.
"""

__version__ = "0.1.0"
