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
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from texgen.errors import TexgenError
from texgen.runtime.canvas import check_paints_textures, synthesize
from texgen.runtime.noise import NoiseLayout
from texgen.runtime.tiling import DEFAULT_TILE

FORMAT = "2"      # 2: the graph paints a tile's interior from its context (1: wrapped a whole torus)

# The metadata contract of a texgen ONNX file (ModelProto.metadata_props, all values strings).
METADATA = {
    "texgen_format": 'format version of this contract: "2"; a file without it is not texgen\'s',
    "method": '"psgan", "sgan", "texnet" or "stylize" (stylize: the last 3*scale*scale '
              "channels of z carry the content image, packed by runtime/stylize.py: paint it "
              "with runtime.stylize.stylize, not as a texture)",
    "noise_layout": 'JSON {"n_global": G, "n_local": L, "n_periodic": P}: channels of z, '
                    "drawn by runtime/noise.sample_noise",
    "scale": "output pixels per noise cell (decimal integer)",
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


class OnnxPainter:
    """A texgen ONNX model ready to paint.

    device: "cpu"; "cuda" or "auto": CUDA when onnxruntime offers it and a test run on it
    works, else the CPU with one line on stderr saying why ("auto" stays quiet only when this
    onnxruntime has no CUDA at all). threads: CPU threads per operator (None: onnxruntime's
    default, one per core). Damaged, edited or foreign files raise
    TexgenError with a one-line reason.
    """

    def __init__(self, path, device: str = "auto", threads: int | None = None):
        if device not in ("auto", "cpu", "cuda"):
            raise TexgenError(f"device must be auto, cpu or cuda, not {device!r}")
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

        opts = ort.SessionOptions()
        # The arena lets the tiles of a canvas reuse their buffers: without it every tensor is
        # fresh zeroed pages (measured 1.7x slower on 2 cores); paint() hands it back after
        # each canvas (release_memory), so memory is still returned between canvases.
        opts.enable_cpu_mem_arena = True
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        self._opts = opts
        try:
            self._session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            meta = dict(self._session.get_modelmeta().custom_metadata_map)
        except Exception as e:                   # onnxruntime raises its own exception types
            raise TexgenError(_unreadable(self.path, ort, e)) from None
        if "texgen_format" not in meta:
            raise TexgenError(f"{self.path} is not a texgen ONNX model (no texgen metadata)")
        if meta["texgen_format"] != FORMAT:
            raise TexgenError(f"{self.path} is a texgen ONNX model of format "
                              f"{meta['texgen_format']!r}; this texgen reads format {FORMAT} "
                              f"(export it again with this texgen)")
        if stored is None:
            raise TexgenError(f"{self.path} has been modified or damaged: its checksum is missing")
        try:
            nl = json.loads(meta["noise_layout"])
            self.layout = NoiseLayout(int(nl["n_global"]), int(nl["n_local"]), int(nl["n_periodic"]))
            self.scale = int(meta["scale"])
            self.margin = int(meta["margin"])
            self.maps = list(json.loads(meta["channels"]))
            self.colour_space = dict(json.loads(meta["colour_space"]))
            self.provenance = json.loads(meta.get("provenance") or "{}")
        except (KeyError, ValueError, TypeError) as e:
            raise TexgenError(f"{self.path} has broken texgen metadata ({type(e).__name__}: {e})") from None
        self.metadata = meta
        self.method = meta.get("method", "psgan")
        self.precision = meta.get("precision", "fp32")
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._output = self._session.get_outputs()[0].name
        self.device = "cpu"
        if device != "cpu":
            self._try_cuda(ort, data, loud=device == "cuda")

    def _try_cuda(self, ort, data: bytes, loud: bool) -> None:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            if loud:
                print("texgen: CUDA is not available in this onnxruntime; painting on the CPU",
                      file=sys.stderr)
            return
        ort.set_default_logger_severity(4)      # a failed CUDA load logs ERRORs in red: we say it once
        try:
            # every new input shape costs cuDNN an algorithm search: tiles all have one shape
            # (tiling.tile_shape) and the heuristic search is cheap
            cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})
            sess = ort.InferenceSession(data, self._opts, providers=[cuda, "CPUExecutionProvider"])
            if sess.get_providers()[0] != "CUDAExecutionProvider":
                raise RuntimeError("onnxruntime could not start it: no GPU, driver or CUDA libraries?")
            self._probe(sess)
        except Exception as e:
            msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            print(f"texgen: CUDA unavailable ({msg}); painting on the CPU", file=sys.stderr)
            return
        finally:
            ort.set_default_logger_severity(3)
        self._session, self.device = sess, "cuda"

    def _session_run(self, sess, z, ys, xs, torus, options=None) -> np.ndarray:
        feed = {"z": z, "ys": ys, "xs": xs, "torus": torus}
        feed = {k: np.ascontiguousarray(v, np.float32) for k, v in feed.items() if k in self._inputs}
        return sess.run([self._output], feed, options)[0]

    def _probe(self, sess, options=None) -> np.ndarray:
        """Paint a single cell: a cheap run to test a provider, size the output or shrink the arena."""
        n = 1 + 2 * self.margin
        z = np.zeros((1, self.layout.channels, n, n), np.float32)
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

    def paint(self, width: int, height: int, seed: int = 0, morph_seed: int | None = None,
              tile: int | None = DEFAULT_TILE,
              progress: Callable[[int, int], None] | None = None,
              cancel: Callable[[], bool] | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
        """(channels, height, width) float32 in [-1, 1]; the same pixels as the torch painter.
        tile, progress, cancel, out: see canvas.synthesize."""
        check_paints_textures(self.method)
        try:
            return synthesize(self.run, self.layout, self.scale, self.margin, width, height,
                              seed=seed, morph_seed=morph_seed, tile=tile, progress=progress,
                              cancel=cancel, out=out)
        finally:
            self.release_memory()
