"""Where onnxruntime paints: the one place that picks an execution provider and says why.

Used by every ONNX painter (runtime/onnx_painter.py), so the CLI, export-set and the Blender
add-on choose the same way. numpy + onnxruntime only.

"auto" tries, in order, the GPUs this onnxruntime package can drive and keeps the first whose
test run paints what the CPU paints:

    cuda      CUDAExecutionProvider    onnxruntime-gpu (Linux, Windows): NVIDIA, with the CUDA
                                       and cuDNN libraries it was built for
    directml  DmlExecutionProvider     onnxruntime-directml (Windows): any DirectX 12 GPU
                                       (NVIDIA, AMD, Intel)
    coreml    CoreMLExecutionProvider  plain onnxruntime on macOS: Apple silicon's GPU
    cpu       CPUExecutionProvider     always there

get_available_providers() lists what the package was built with, not what works on this
computer (onnxruntime-gpu lists CUDA on a machine without a GPU), hence the test run. Each
package ships one `onnxruntime` module, so exactly one of the GPU providers can be present.

What the user hears (DeviceChoice.note, one line): why a GPU was skipped, but only when it is
worth saying: the user asked for that device, or the GPU is there and failed (an NVIDIA
driver is installed but CUDA would not start). A CPU-only machine that happens to have
onnxruntime-gpu installed paints on the CPU without a warning.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from texgen.errors import TexgenError

PROVIDERS = {"cuda": "CUDAExecutionProvider", "directml": "DmlExecutionProvider",
             "coreml": "CoreMLExecutionProvider", "cpu": "CPUExecutionProvider"}
LABELS = {"cuda": "CUDA", "directml": "DirectML", "coreml": "CoreML", "cpu": "CPU"}
GPU_ORDER = ("cuda", "directml", "coreml")
CHOICES = ("auto", *GPU_ORDER, "cpu")
# the package that brings each provider, for the "this onnxruntime has none" hint
PACKAGES = {"cuda": "onnxruntime-gpu", "directml": "onnxruntime-directml",
            "coreml": "onnxruntime (macOS)"}
# Provider settings. CUDA: tiles all have one shape (tiling.tile_shape), so cuDNN's cheap
# heuristic algorithm search is enough. CoreML: an ML Program (needed for ConvTranspose and
# float32 precision) on the GPU and CPU; the Neural Engine computes in float16 only.
OPTIONS = {"cuda": {"cudnn_conv_algo_search": "HEURISTIC"},
           "coreml": {"ModelFormat": "MLProgram", "MLComputeUnits": "CPUAndGPU"}}
# A test run on a GPU must give the CPU's pixels (output range [-1, 1]) to this tolerance:
# TF32 or float16 arithmetic stays far below it, a broken driver does not.
TOLERANCE = 0.05


@dataclass(frozen=True)
class DeviceChoice:
    device: str             # "cuda", "directml", "coreml" or "cpu": where the painting runs
    note: str = ""          # one line on a GPU that was skipped, "" when nothing is worth saying

    @property
    def label(self) -> str:
        return LABELS[self.device]


def check_device(device: str) -> str:
    if device not in CHOICES:
        raise TexgenError(f"device must be one of {', '.join(CHOICES)}, not {device!r}")
    return device


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is installed (then a CUDA failure is worth a warning)."""
    if sys.platform.startswith("linux"):
        return Path("/proc/driver/nvidia/version").exists()
    if sys.platform == "win32":
        return (Path(os.environ.get("SystemRoot", r"C:\Windows")) / "System32" / "nvcuda.dll").exists()
    return False


def _gpu_present(device: str) -> bool:
    # DirectML and CoreML exist only where their GPU API does (Windows 10+, macOS): a failure
    # there is always news. CUDA is offered by onnxruntime-gpu on any machine.
    return nvidia_driver_present() if device == "cuda" else True


def session_options(ort, base, device: str):
    """base (an ort.SessionOptions) as the device needs it: DirectML cannot use memory
    patterns or parallel execution (onnxruntime's DirectML documentation)."""
    if device == "directml":
        base.enable_mem_pattern = False
        base.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return base


def first_line(e: BaseException, limit: int = 160) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:limit]


def _why_not_started(ort, device: str) -> str:
    """onnxruntime only logs why a provider did not start; for CUDA the usual reason is a
    missing NVIDIA library, which loading its provider library names (e.g. "libcublasLt.so.13:
    cannot open shared object file")."""
    if device == "cuda":
        import ctypes
        capi = Path(ort.__file__).parent / "capi"
        for lib in (*capi.glob("libonnxruntime_providers_cuda.so"),
                    *capi.glob("onnxruntime_providers_cuda.dll")):
            try:
                ctypes.CDLL(str(lib))
            except OSError as e:
                return f"{first_line(e)} (CUDA needs an NVIDIA driver, CUDA and cuDNN)"
    return "onnxruntime could not start it (no GPU, driver or libraries?)"


def choose(ort, data: bytes, make_options: Callable[[], object], requested: str,
           cpu_session, probe: Callable[[object], np.ndarray]):
    """(session, DeviceChoice): the first device of `requested` ("auto": GPU_ORDER, then the
    CPU) whose session starts and whose test run matches the CPU's.

    cpu_session: the model's CPU session (already made: it is the fallback and the reference);
    make_options(): fresh ort.SessionOptions; probe(session): a small deterministic run.
    """
    check_device(requested)
    if requested == "cpu":
        return cpu_session, DeviceChoice("cpu")
    candidates = GPU_ORDER if requested == "auto" else (requested,)
    available = set(ort.get_available_providers())
    skipped: list[str] = []
    reference = None
    for device in candidates:
        name = PROVIDERS[device]
        if name not in available:
            if requested != "auto":
                skipped.append(f"{LABELS[device]} is not in this onnxruntime "
                               f"(it comes with {PACKAGES[device]})")
            continue
        ort.set_default_logger_severity(4)      # a failed start logs errors in red: we say it once
        try:
            sess = ort.InferenceSession(data, session_options(ort, make_options(), device),
                                        providers=[(name, OPTIONS.get(device, {})),
                                                   PROVIDERS["cpu"]])
            if sess.get_providers()[0] != name:
                raise RuntimeError(_why_not_started(ort, device))
            if reference is None:
                reference = probe(cpu_session)
            got = probe(sess)
            err = float(np.abs(got - reference).max()) if got.shape == reference.shape else np.inf
            if not err <= TOLERANCE:
                raise RuntimeError(f"its test run differs from the CPU's by {err:.3g}")
        except Exception as e:                  # onnxruntime raises its own exception types
            if requested != "auto" or _gpu_present(device):
                skipped.append(f"{LABELS[device]} skipped: {first_line(e)}")
            continue
        finally:
            ort.set_default_logger_severity(3)
        return sess, DeviceChoice(device, "; ".join(skipped))
    note = "; ".join(skipped)
    return cpu_session, DeviceChoice("cpu", f"{note}; painting on the CPU" if note else "")
