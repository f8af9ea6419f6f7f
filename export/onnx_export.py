"""Export a trained texgen generator to ONNX, painted by texgen/runtime/onnx_painter.py.

    export_onnx("models/bricks", "bricks.onnx")            # float32
    export_onnx("models/bricks", "bricks16.onnx", fp16=True)

The graph is image = G.interior(z, ys, xs, torus) (inputs and output float32, h and w
dynamic): it paints a tile's interior from its context (runtime/tiling.py); batch norm folded
into the transposed convolutions, opset 17, IR version 8 (readable by onnxruntime >= 1.14),
and the metadata contract runtime/onnx_painter.METADATA. The file is written
atomically and carries a SHA-256 of itself, so the painter rejects a damaged or edited file.

fp16: the conv trunk (weights and activations) is half precision; the inputs, the wave numbers
(rounded to whole periods per canvas) and sin/cos arguments, which reach hundreds of radians,
stay float32, and the image is cast back to float32.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from texgen import checkpoint
from texgen.errors import TexgenError
from texgen.paint import load_generator
from texgen.files import atomic_write_bytes
from texgen.models.layers import WrapConvTranspose2d
from texgen.runtime.maps import colour_space
from texgen.runtime.noise import NOISE_VERSION, sample_noise
from texgen.runtime.surface import Surface
from texgen.runtime.tiling import tile_noise
from texgen.runtime.onnx_painter import (DIGEST_KEY, DIGEST_PLACEHOLDER, DIGEST_PREFIX, FORMAT,
                                         METADATA)

OPSET = 17
IR_VERSION = 8          # onnx 1.23 writes IR 11+ by default; onnxruntime 1.31 reads <= 13 (8: >= 1.14)
THUMB = 128             # exemplar thumbnail's longest side in px


# ----------------------------------------------------------------------------- batch norm

@torch.no_grad()
def fold_batchnorm(G: nn.Module) -> nn.Module:
    """A copy of G in eval mode with every BatchNorm2d folded into the (transposed)
    convolution just before it in an nn.Sequential and replaced by nn.Identity, and every
    layer whose kernel is derived from its weights (layers.HalfChromaConvTranspose2d) made a
    plain one holding that kernel, so the graph stores constants, not the derivation.

    y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta  ==  conv'(x) + b' with
    w' = w * s along the output-channel dim (dim 1 of ConvTranspose's (cin, cout, kh, kw),
    dim 0 of Conv's (cout, cin, kh, kw)), s = gamma / sqrt(var + eps), b' = (b - mean) * s + beta.
    """
    G = copy.deepcopy(G).eval()
    for seq in [m for m in G.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq)):
            if isinstance(seq[i], WrapConvTranspose2d):     # a derived kernel, as constants
                seq[i] = seq[i].plain()
            bn, conv = seq[i], seq[i - 1] if i else None
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and i + 1 < len(seq):
                _fold_into_next(bn, seq[i + 1])         # a BN that opens a block (texnet joins)
                seq[i] = nn.Identity()
                continue
            if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) or conv.groups != 1:
                raise ValueError(f"cannot fold {bn} into {type(conv).__name__}")
            if bn.running_mean is None:
                raise ValueError(f"cannot fold {bn}: it keeps no running statistics")
            s = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                s = s * bn.weight
            shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
            conv.weight.mul_(s.reshape(shape))
            b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            b = (b - bn.running_mean) * s + (bn.bias if bn.bias is not None else 0)
            conv.bias = nn.Parameter(b.detach().clone())
            seq[i] = nn.Identity()
    return G


def _fold_into_next(bn: nn.BatchNorm2d, conv: nn.Module) -> None:
    """conv(s * x + t) == conv'(x) with w' = w * s along the input-channel dim and
    b' = b + sum over (cin, kh, kw) of w * t: exact only when conv pads nothing with zeros
    (WrapConv2d wraps, which commutes with a per-channel affine map)."""
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or any(conv.padding):
        raise ValueError(f"cannot fold {bn} into the {type(conv).__name__} after it")
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight
    t = (bn.bias if bn.bias is not None else 0) - bn.running_mean * s
    b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    b = b + (conv.weight * t.reshape(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    conv.weight.mul_(s.reshape(1, -1, 1, 1))
    conv.bias = nn.Parameter(b.detach().clone())


class _Graph(nn.Module):
    """The exported signature: positional float32 inputs z, ys, xs, torus; paints a tile's
    interior (Generator.interior), the contract of runtime/tiling.py."""

    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, z, ys, xs, torus):
        return self.G.interior(z, (ys, xs), torus)


# ----------------------------------------------------------------------------- fp16

def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision conv trunk, float32 everywhere else (onnx 1.23 has no converter of its
    own and onnxconverter_common is not a dependency).

    Every node from the first convolution of the trunk on (the first Conv or ConvTranspose
    outside the wave MLP, whose nodes the exporter names /waves/...; nodes come in
    topological order and the waves all come before it) runs in float16: its float
    initializers and Constant tensors are cast, a Cast to float16 is put on every float
    tensor that flows into the trunk from before it (PSGAN: the first convolution's input;
    texnet: each level's unpacked noise) and a Cast back to float32 produces each graph output.
    """
    model = copy.deepcopy(model)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    # the exporter shares parameters of equal values (pixel-noise strengths alike) through
    # Identity nodes at the head of the graph, before the waves: read the initializer itself
    alias = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity" and n.input[0] in inits}
    nodes = [n for n in g.node if n.output[0] not in alias]
    for n in nodes:
        for k, name in enumerate(n.input):
            n.input[k] = alias.get(name, name)
    first = next((i for i, n in enumerate(nodes) if n.op_type in ("Conv", "ConvTranspose")
                  and not n.name.startswith("/waves/")), None)
    if first is None:
        raise TexgenError("fp16 export: the graph has no convolution trunk")
    trunk = nodes[first:]
    before = {name for n in nodes[:first] for name in n.input}
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(onnx.shape_inference.infer_shapes(model).graph.value_info) + list(g.input)}
    made_before = {o for n in nodes[:first] for o in n.output} | {v.name for v in g.input}
    # float parameters that are not data: Resize's roi and scales stay float32 (texnet)
    keep32 = {n.input[i] for n in trunk if n.op_type == "Resize" for i in (1, 2) if i < len(n.input)}
    done = set(keep32)                  # initializers cast (or to leave as they are)
    for n in trunk:
        if n.op_type == "Cast" and any(a.name == "to" and a.i == TensorProto.FLOAT for a in n.attribute):
            raise TexgenError(f"fp16 export: unexpected float Cast node {n.name} in the conv trunk")
        if n.op_type == "Constant" and n.output[0] not in keep32:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(
                        numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        for name in n.input:
            t = inits.get(name)
            if t is None or name in done or t.data_type != TensorProto.FLOAT:
                continue
            if name in before:
                raise TexgenError(f"fp16 export: initializer {name} is shared with the waves")
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), name))
            done.add(name)
    crossing = list(dict.fromkeys(name for n in trunk for name in n.input if name in made_before
                                  and name not in keep32 and types.get(name) == TensorProto.FLOAT))
    casts = [helper.make_node("Cast", [name], [name + "_fp16"], to=TensorProto.FLOAT16,
                              name=f"{name}_to_fp16") for name in crossing]
    for n in trunk:
        for k, name in enumerate(n.input):
            if name in crossing:
                n.input[k] = name + "_fp16"
    new_nodes = nodes[:first] + casts + trunk
    for out in g.output:
        half = out.name + "_fp16"
        for n in trunk:
            for k, name in enumerate(n.output):
                if name == out.name:
                    n.output[k] = half
        new_nodes.append(helper.make_node("Cast", [half], [out.name], to=TensorProto.FLOAT,
                                          name=f"{out.name}_to_fp32"))
    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]                 # stale float32 types; shape inference redoes them
    return model


# ----------------------------------------------------------------------------- metadata

def _exemplar_thumbnail(model_path: Path) -> str:
    """base64 PNG of the model folder's exemplar.png, longest side <= THUMB px; "" if none."""
    from PIL import Image
    png = checkpoint.model_path(model_path).parent / "exemplar.png"
    if not png.is_file():
        return ""
    try:
        with Image.open(png) as im:
            im.load()
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            im.thumbnail((THUMB, THUMB), Image.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except (OSError, ValueError) as e:
        warnings.warn(f"{png}: unreadable exemplar thumbnail left out ({e})")
        return ""
    return base64.b64encode(buf.getvalue()).decode("ascii")


def build_metadata(G, meta: dict, model_path: Path, precision: str) -> dict[str, str]:
    cfg, lay = G.cfg, G.cfg.layout
    prov = dict(meta.get("provenance") or {})
    maps = list(cfg.maps)
    values = {
        "texgen_format": FORMAT,
        "kind": cfg.kind,
        "noise_layout": json.dumps({"n_global": lay.n_global, "n_local": lay.n_local,
                                    "n_periodic": lay.n_periodic}),
        "noise_version": str(NOISE_VERSION),
        "scale": str(cfg.scale),
        "zoom": repr(float(cfg.zoom)),
        "margin": str(G.margin),
        "channels": json.dumps(maps),
        "colour_space": json.dumps({m: colour_space(m) for m in maps}),
        "exemplar_png_base64": _exemplar_thumbnail(model_path),
        "provenance": json.dumps(prov),
        "precision": precision,
        **Surface.from_dict(meta.get("surface")).to_metadata(),
        DIGEST_KEY: DIGEST_PLACEHOLDER,
    }
    assert values.keys() == METADATA.keys(), "metadata out of step with its contract"
    return values


def _seal(model: onnx.ModelProto) -> bytes:
    """Serialize with the texgen_sha256 entry last, then write the digest into it."""
    data = model.SerializeToString()
    at = data.find(DIGEST_PREFIX + DIGEST_PLACEHOLDER.encode())
    if at < 0 or data.find(DIGEST_PREFIX, at + 1) >= 0:
        raise TexgenError("could not place the checksum in the ONNX file")
    start = at + len(DIGEST_PREFIX)
    digest = hashlib.sha256(data).hexdigest().encode()
    return data[:start] + digest + data[start + 64:]


# ----------------------------------------------------------------------------- export

def export_onnx(model_path, out_path, fp16: bool = False) -> dict[str, str]:
    """Write `out_path` (.onnx) from the texgen model at `model_path`; returns its metadata."""
    model_path, out_path = Path(model_path), Path(out_path)
    G, meta = load_generator(model_path)
    G = G.eval()
    folded = fold_batchnorm(G)
    cfg = G.cfg
    zt, ys, xs = tile_noise(sample_noise(cfg.layout, 3, 4, seed=0), 0, 0, 3, 4, G.margin)
    z, ys, xs = torch.from_numpy(zt), torch.from_numpy(ys), torch.from_numpy(xs)
    torus = torch.tensor([3.0, 4.0])
    with torch.no_grad():
        ref, got = G.interior(z, (ys, xs), torus), folded.interior(z, (ys, xs), torus)
    err = (ref - got).abs().max().item()
    if not err <= 1e-4:
        raise TexgenError(f"folding batch norm changed the output by {err:.3g}")

    buf = io.BytesIO()
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):    # the legacy exporter's notices
            warnings.simplefilter("ignore", category)
        torch.onnx.export(_Graph(folded), (z, ys, xs, torus), buf, dynamo=False,
                          opset_version=OPSET, input_names=["z", "ys", "xs", "torus"],
                          output_names=["image"], do_constant_folding=True,
                          dynamic_axes={"z": {0: "batch", 2: "h", 3: "w"}, "ys": {0: "h"},
                                        "xs": {0: "w"}, "image": {0: "batch", 2: "H", 3: "W"}})
    model = onnx.load_from_string(buf.getvalue())
    if any(n.op_type == "BatchNormalization" for n in model.graph.node):
        raise TexgenError("export left a BatchNormalization node in the graph")
    if fp16:
        model = to_fp16(model)
    model.ir_version = IR_VERSION
    values = build_metadata(G, meta, model_path, "fp16" if fp16 else "fp32")
    del model.metadata_props[:]
    for k, v in values.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    model.producer_name, model.doc_string = "texgen", f"texgen {values['kind']} texture generator"
    onnx.checker.check_model(model, full_check=True)
    atomic_write_bytes(out_path, _seal(model))
    return values
