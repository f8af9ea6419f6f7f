"""Where onnxruntime paints (runtime/devices.py), with the GPUs faked.

This machine has no GPU, so each test stands a fake onnxruntime in front of the real one: it
offers the providers the test names and builds real CPU sessions that report the provider
asked for (and, for a broken GPU, paint wrong pixels or fail to start). The painter above it
is the real OnnxPainter with the shipped built-in model.
"""

import types

import numpy as np
import onnxruntime
import pytest

from texgen.builtin import builtin_onnx
from texgen.errors import TexgenError
from texgen.runtime import devices, onnx_painter
from texgen.runtime.onnx_painter import OnnxPainter

MODEL = builtin_onnx(None)


class FakeSession:
    """A real CPU session that says it runs on `provider`; `offset` spoils its pixels."""

    def __init__(self, real, provider, offset=0.0):
        self._real, self._provider, self._offset = real, provider, offset

    def get_providers(self):
        return [self._provider, "CPUExecutionProvider"]

    def run(self, names, feed, options=None):
        return [o + np.float32(self._offset) for o in self._real.run(names, feed, options)]

    def __getattr__(self, name):
        return getattr(self._real, name)


def fake_ort(tmp_path, offered, behaviour):
    """An onnxruntime that offers `offered` providers. behaviour[provider]: "works", "noisy"
    (paints other pixels), "cpu" (starts on the CPU instead, as onnxruntime-gpu does without
    CUDA libraries) or "raises"."""
    calls = []

    def session(data, opts, providers):
        first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        calls.append((first, opts))
        real = onnxruntime.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        how = behaviour.get(first, "works")
        if first == "CPUExecutionProvider" or how == "cpu":
            return real
        if how == "raises":
            raise RuntimeError(f"{first}: device lost\nsecond line")
        return FakeSession(real, first, offset=0.5 if how == "noisy" else 0.0)

    ort = types.SimpleNamespace(
        __file__=str(tmp_path / "onnxruntime" / "__init__.py"),     # no provider libraries
        get_available_providers=lambda: [*offered, "CPUExecutionProvider"],
        InferenceSession=session, SessionOptions=onnxruntime.SessionOptions,
        RunOptions=onnxruntime.RunOptions, ExecutionMode=onnxruntime.ExecutionMode,
        set_default_logger_severity=lambda level: None)
    return ort, calls


@pytest.fixture
def use_ort(monkeypatch, tmp_path):
    def install(offered, behaviour=None, nvidia=False):
        ort, calls = fake_ort(tmp_path, offered, behaviour or {})
        monkeypatch.setattr(onnx_painter, "_ort", lambda: ort)
        monkeypatch.setattr(devices, "nvidia_driver_present", lambda: nvidia)
        return calls
    return install


@pytest.fixture(scope="module")
def cpu_pixels():
    return OnnxPainter(MODEL, device="cpu", threads=1).paint(64, 64, seed=3)


def test_onnxruntime_gpu_without_a_gpu_paints_on_the_cpu_quietly(use_ort):
    """onnxruntime-gpu offers CUDA everywhere; with no NVIDIA driver its failure is no news."""
    use_ort(["TensorrtExecutionProvider", "CUDAExecutionProvider"], {"CUDAExecutionProvider": "cpu"})
    p = OnnxPainter(MODEL, threads=1)
    assert (p.device, p.device_note) == ("cpu", "")


def test_a_failing_gpu_is_reported_in_one_line(use_ort):
    use_ort(["CUDAExecutionProvider"], {"CUDAExecutionProvider": "cpu"}, nvidia=True)
    p = OnnxPainter(MODEL, threads=1)
    assert p.device == "cpu"
    assert p.device_note.startswith("CUDA skipped: onnxruntime could not start it")
    assert p.device_note.endswith("painting on the CPU") and "\n" not in p.device_note
    # asked for by name: said even without a driver
    use_ort(["CUDAExecutionProvider"], {"CUDAExecutionProvider": "raises"})
    p = OnnxPainter(MODEL, device="cuda", threads=1)
    assert p.device == "cpu" and p.device_note.startswith("CUDA skipped: CUDAExecutionProvider: "
                                                          "device lost;")


def test_directml_is_chosen_and_paints_the_cpus_pixels(use_ort, cpu_pixels):
    calls = use_ort(["DmlExecutionProvider"])
    p = OnnxPainter(MODEL, threads=1)
    assert (p.device, p.device_note) == ("directml", "")
    opts = next(o for name, o in calls if name == "DmlExecutionProvider")
    assert opts.enable_mem_pattern is False          # DirectML's documented requirements
    assert opts.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    assert np.abs(p.paint(64, 64, seed=3) - cpu_pixels).max() == 0


def test_order_cuda_then_directml_then_coreml(use_ort):
    use_ort(["CoreMLExecutionProvider", "DmlExecutionProvider", "CUDAExecutionProvider"])
    assert OnnxPainter(MODEL, threads=1).device == "cuda"
    use_ort(["CoreMLExecutionProvider", "CUDAExecutionProvider"],
            {"CUDAExecutionProvider": "cpu"}, nvidia=True)
    p = OnnxPainter(MODEL, threads=1)
    assert p.device == "coreml" and p.device_note.startswith("CUDA skipped:")


def test_a_gpu_that_paints_wrong_pixels_is_not_used(use_ort, cpu_pixels):
    use_ort(["CoreMLExecutionProvider"], {"CoreMLExecutionProvider": "noisy"})
    p = OnnxPainter(MODEL, threads=1)
    assert p.device == "cpu"
    assert "CoreML skipped: its test run differs from the CPU's by 0.5" in p.device_note
    assert np.abs(p.paint(64, 64, seed=3) - cpu_pixels).max() == 0


def test_asking_for_a_device_this_onnxruntime_lacks(use_ort):
    use_ort([])
    p = OnnxPainter(MODEL, device="directml", threads=1)
    assert p.device == "cpu"
    assert p.device_note == ("DirectML is not in this onnxruntime (it comes with "
                             "onnxruntime-directml); painting on the CPU")
    assert OnnxPainter(MODEL, threads=1).device_note == ""          # auto: nothing to say
    with pytest.raises(TexgenError, match="device must be one of auto, cuda, directml"):
        OnnxPainter(MODEL, device="gpu")


def test_cli_says_where_it_painted(use_ort, tmp_path):
    from click.testing import CliRunner
    from texgen.cli import main
    use_ort(["CUDAExecutionProvider"], {"CUDAExecutionProvider": "cpu"}, nvidia=True)
    r = CliRunner().invoke(main, ["generate", "--size", "64", "--threads", "1",
                                  "--out", str(tmp_path / "a.png")])
    assert r.exit_code == 0, r.output
    assert "painted on CPU" in r.stdout
    assert "note: CUDA skipped: onnxruntime could not start it" in r.stderr
    use_ort(["DmlExecutionProvider"])
    r = CliRunner().invoke(main, ["generate", "--size", "64", "--out", str(tmp_path / "b.png")])
    assert "painted on DirectML" in r.stdout and "note:" not in r.stderr
