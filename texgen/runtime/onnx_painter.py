"""Paint textures from an exported ONNX model with onnxruntime: no PyTorch needed.

Imports only numpy, onnxruntime, the standard library and texgen.runtime.*, so an app (or
Blender) can ship this file, the runtime package and a `.onnx` file, and nothing else.

The exported file (export/onnx_export.py writes it) is a graph

    image = G(z, ys, xs, torus)    z (B, C, h + 2m, w + 2m): a tile of h x w noise cells and
                                     m = margin cells of context on each side (tiling.tile_noise)
                                   ys (h + 2m,), xs (w + 2m,): their canvas cells
                                   torus (2,) = [H, W]: the whole canvas in cells
                                   image (B, channels, h*scale, w*scale) in [-1, 1]: the interior

plus the metadata described by METADATA below, which is everything a painter needs to draw Z
(runtime/noise.py) and tile the canvas (runtime/tiling.py) exactly as the torch painter does.
Files of format 2 (texgen 0.1) were made for noise version 1: they are refused with "export it
again", so there is one noise implementation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import numpy as np

from texgen.errors import TexgenError
from texgen.kinds import check_kind
from texgen.runtime.canvas import PaintsTextures
from texgen.runtime.devices import check_device, choose
from texgen.runtime.noise import NOISE_VERSION, NoiseLayout
from texgen.runtime.surface import Surface

# 3: "kind" and "noise_version" (random-access noise); 2: the graph paints a tile's interior
# from its context; 1: it wrapped a whole torus
FORMAT = "3"

# The metadata contract of a texgen ONNX file (ModelProto.metadata_props, all values strings).
METADATA = {
    "texgen_format": 'format version of this contract: "3"; a file without it is not texgen\'s',
    "kind": '"psgan", "sgan", "texnet" or "stylize" (texgen/kinds.py; stylize: the last '
            "3*scale*scale channels of z carry the content image, packed by runtime/stylize.py: "
            "paint it with runtime.stylize.stylize, not as a texture)",
    "noise_layout": 'JSON {"n_global": G, "n_local": L, "n_periodic": P}: channels of z, '
                    "drawn by runtime/noise.Noise",
    "noise_version": 'the noise definition z is drawn with (runtime/noise.NOISE_VERSION, '
                     'docs/noise.md): "2"',
    "scale": "output pixels per noise cell (decimal integer)",
    "zoom": "the model's pixels per texture pixel (decimal; runtime/canvas.Canvas paints the "
            "torus at the model's pixels and resamples it by 1 / zoom; missing in files "
            'exported before it: "1")',
    "margin": "noise cells of context on each side of the graph's input that it consumes "
              "(decimal integer)",
    "channels": 'JSON list of the map names in output-channel order (config["maps"]), '
                'e.g. ["color"]',
    "colour_space": 'JSON {map name: "sRGB" | "linear"}: color is sRGB, data maps are linear',
    "exemplar_png_base64": "PNG thumbnail (<= 128 px) of the training exemplar, base64; "
                           '"" when the model folder had none',
    "provenance": "JSON: method, preset, exemplar names, licence, as recorded at training",
    "precision": '"fp32" or "fp16" (fp16: weights and the conv trunk in half precision; '
                 "inputs, wave numbers and output stay float32)",
    "texel_size": 'metres of surface per painted pixel (decimal), "" when unknown '
                  "(runtime/surface.py; missing in files exported before it: unknown)",
    "map_defaults": 'JSON {MapParams field: value}: the map settings this texture wants '
                    'by default, e.g. {"height_invert": true} for light mortar (missing: {})',
    "texgen_sha256": "SHA-256 (hex) of the whole file with this value replaced by 64 '0's: "
                     "detects damaged or edited files without parsing them",
}

DIGEST_KEY = "texgen_sha256"
DIGEST_PLACEHOLDER = "0" * 64
# protobuf encoding of StringStringEntryProto{key: DIGEST_KEY, value: <64 chars>} up to the value
DIGEST_PREFIX = b"\x0a" + bytes([len(DIGEST_KEY)]) + DIGEST_KEY.encode() + b"\x12\x40"


def file_digest(data: bytes) -> tuple[str | None, str | None]:
    """(stored digest, digest of `data` with the stored one blanked); (None, None) if absent."""
    at = data.find(DIGEST_PREFIX)
    if at < 0 or data.find(DIGEST_PREFIX, at + 1) >= 0:
        return None, None
    start = at + len(DIGEST_PREFIX)
    stored = data[start:start + 64]
    blanked = data[:start] + DIGEST_PLACEHOLDER.encode() + data[start + 64:]
    return stored.decode("ascii", "replace"), hashlib.sha256(blanked).hexdigest()


def _unreadable(path: Path, ort, e: Exception) -> str:
    """Why onnxruntime refused a file, in one line: a valid file made for a newer onnxruntime
    is not called corrupt."""
    text = " ".join(str(e).split())
    m = re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", text)
    if m:
        return (f"{path} is an ONNX file of IR version {m[1]}, newer than this onnxruntime "
                f"{ort.__version__} reads (up to {m[2]}): upgrade onnxruntime, or export the "
                f"model again with this texgen (texgen export)")
    return (f"{path} is not a readable ONNX model (corrupt or truncated): "
            f"{text[:200] or type(e).__name__}")


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as e:                                  # pragma: no cover
        raise TexgenError(f"painting an ONNX model needs onnxruntime ({e})") from None
    ort.set_default_logger_severity(3)          # its CUDA failures are ours to report, once
    return ort


class OnnxPainter(PaintsTextures):
    """A texgen ONNX model ready to paint: a texgen.painters.Painter.

    device: "auto" (the first GPU whose test run works, else the CPU), "cuda", "directml",
    "coreml" or "cpu" (runtime/devices.py chooses; .device says where it paints and
    .device_note, one line or "", why a GPU was skipped). threads: CPU threads per operator
    (None: onnxruntime's default, one per core). Damaged, edited or foreign files raise
    TexgenError with a one-line reason.
    """

    def __init__(self, path, device: str = "auto", threads: int | None = None):
        check_device(device)
        if threads is not None and threads < 1:
            raise TexgenError(f"threads must be at least 1, not {threads}")
        self.path = Path(path)
        if not self.path.is_file():
            raise TexgenError(f"no model found at {self.path}")
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise TexgenError(f"cannot read {self.path}: {e.strerror or e}") from None
        ort = _ort()
        stored, actual = file_digest(data)
        if stored is not None and stored != actual:
            raise TexgenError(f"{self.path} has been modified or damaged: it fails its checksum")

        try:
            self._session = ort.InferenceSession(data, self._options(ort, threads),
                                                 providers=["CPUExecutionProvider"])
            meta = dict(self._session.get_modelmeta().custom_metadata_map)
        except Exception as e:                   # onnxruntime raises its own exception types
            raise TexgenError(_unreadable(self.path, ort, e)) from None
        if "texgen_format" not in meta:
            raise TexgenError(f"{self.path} is not a texgen ONNX model (no texgen metadata)")
        if meta["texgen_format"] == "2":
            raise TexgenError(f"{self.path} was exported before the random-access noise (texgen "
                              f"0.1): export it again (texgen export MODEL)")
        if meta["texgen_format"] != FORMAT:
            raise TexgenError(f"{self.path} is a texgen ONNX model of format "
                              f"{meta['texgen_format']!r}; this texgen reads format {FORMAT} "
                              f"(export it again with this texgen)")
        if meta.get("noise_version") != str(NOISE_VERSION):
            raise TexgenError(f"{self.path} was made for noise version "
                              f"{meta.get('noise_version')!r}; this texgen draws version "
                              f"{NOISE_VERSION}: export it again (texgen export MODEL)")
        if stored is None:
            raise TexgenError(f"{self.path} has been modified or damaged: its checksum is missing")
        try:
            nl = json.loads(meta["noise_layout"])
            self.layout = NoiseLayout(int(nl["n_global"]), int(nl["n_local"]), int(nl["n_periodic"]))
            self.scale = int(meta["scale"])
            self.zoom = float(meta.get("zoom", "1"))
            if not 0.5 <= self.zoom <= 2:
                raise ValueError(f"zoom {self.zoom} out of 0.5..2")
            self.margin = int(meta["margin"])
            self.maps = list(json.loads(meta["channels"]))
            self.colour_space = dict(json.loads(meta["colour_space"]))
            self.provenance = json.loads(meta.get("provenance") or "{}")
            self.surface = Surface.from_metadata(meta)
            self.kind = check_kind(meta["kind"])
        except (KeyError, ValueError, TypeError, TexgenError) as e:
            raise TexgenError(f"{self.path} has broken texgen metadata ({type(e).__name__}: {e})") from None
        self.metadata = meta
        self.noise_version = NOISE_VERSION
        self.precision = meta.get("precision", "fp32")
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._output = self._session.get_outputs()[0].name
        self._session, choice = choose(ort, data, lambda: self._options(ort, threads), device,
                                       self._session, self._probe)
        self.device, self.device_note = choice.device, choice.note

    @staticmethod
    def _options(ort, threads: int | None):
        opts = ort.SessionOptions()
        # The arena lets the tiles of a canvas reuse their buffers: without it every tensor is
        # fresh zeroed pages (measured 1.7x slower on 2 cores); paint() hands it back after
        # each canvas (release_memory), so memory is still returned between canvases.
        opts.enable_cpu_mem_arena = True
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        return opts

    def _session_run(self, sess, z, ys, xs, torus, options=None) -> np.ndarray:
        feed = {"z": z, "ys": ys, "xs": xs, "torus": torus}
        feed = {k: np.ascontiguousarray(v, np.float32) for k, v in feed.items() if k in self._inputs}
        return sess.run([self._output], feed, options)[0]

    def _probe(self, sess, options=None) -> np.ndarray:
        """Paint a single cell from fixed noise: a cheap run to test a provider against the CPU
        (devices.choose), size the output or shrink the arena."""
        n = 1 + 2 * self.margin
        z = np.random.default_rng(0).uniform(-1, 1, (1, self.layout.channels, n, n)).astype(np.float32)
        cells = np.zeros(n, np.float32)             # every cell of a 1-cell torus is cell 0
        return self._session_run(sess, z, cells, cells, np.ones(2, np.float32), options)

    def release_memory(self) -> None:
        """Hand the CPU arena's buffers back to the system (paint() does it after each canvas;
        call it after painting tiles through run() yourself)."""
        ro = _ort().RunOptions()
        ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self._probe(self._session, ro)

    @property
    def channels(self) -> int:
        """Output channels of the image (a "color" map is 3 of them)."""
        n = self._session.get_outputs()[0].shape[1]
        if not isinstance(n, int):              # a symbolic dim: ask the graph, on one cell
            n = int(self._probe(self._session).shape[1])
        return n

    def exemplar_png(self) -> bytes | None:
        """The training exemplar's PNG thumbnail stored in the file, or None."""
        b64 = self.metadata.get("exemplar_png_base64", "")
        return base64.b64decode(b64) if b64 else None

    def run(self, z, ys, xs, torus) -> np.ndarray:
        """Paint the interior of noise tile z (B, C, h + 2*margin, w + 2*margin) at canvas
        cells ys, xs of a torus [H, W] cells: (B, channels, h*scale, w*scale) float32 in [-1, 1]."""
        return self._session_run(self._session, z, ys, xs, torus).astype(np.float32, copy=False)

    def paint(self, width: int, height: int, seed: int = 0, **options) -> np.ndarray | None:
        """runtime.canvas.paint_texture with this model (options: morph_seed, tileable,
        window, sink, tile, progress, cancel), then the CPU arena's buffers go back."""
        try:
            return super().paint(width, height, seed, **options)
        finally:
            self.release_memory()
