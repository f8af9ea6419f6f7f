"""benchmarks/gpu_check.py: what it carries to a GPU machine must score as here."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402
from texgen.models.vgg import VGG19, default_weights  # noqa: E402


def test_cut_vgg_weights_give_the_same_features(tmp_path):
    # the device tool carries at most 64 MiB: the weights go cut after relu5_1, the deepest
    # layer texgen reads, and must give every layer's features bit for bit
    dest = tmp_path / "vgg_normalised.pth"
    gpu_check.cut_vgg(dest)
    assert dest.stat().st_size < 0.7 * default_weights().stat().st_size
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full, cut = VGG19()(x), VGG19(weights=dest)(x)
    assert full.keys() == cut.keys() and "relu5_1" in cut
    for layer in full:
        assert torch.equal(full[layer], cut[layer]), layer
