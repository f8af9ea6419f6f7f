"""The only code that knows the checkpoint format. Nothing here ever unpickles.

A model is a folder:
    model.safetensors      generator weights (batch norm statistics fixed), with the model
                           config, provenance and a SHA-256 of the weights in its metadata:
                           everything needed to paint
    training.safetensors   generator + discriminator + Adam moments + RNG states, and the
                           training config and iteration in its metadata: everything to resume
    exemplar.png           thumbnail of the training image(s)
    preview.png            latest preview (exemplar beside a tiled sample)
Every file is written atomically (temp file, then rename), so a crash or a full disk leaves the
previous version whole. `model.safetensors` alone is a complete model and may be copied anywhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from texgen.errors import TexgenError
from texgen.files import atomic_write_bytes

FORMAT = "texgen-psgan/1"
MODEL_FILE = "model.safetensors"
TRAIN_FILE = "training.safetensors"


def _digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """SHA-256 over the weights and the metadata strings: an edited config fails too."""
    h = hashlib.sha256()
    for key in sorted(meta):
        h.update(key.encode() + b"\0" + meta[key].encode() + b"\0")
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {"format": FORMAT, **{k: json.dumps(v) for k, v in meta.items()}}
    header["sha256"] = _digest(tensors, header)
    atomic_write_bytes(path, st_save(tensors, metadata=header))


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if not path.is_file():
        raise TexgenError(f"no model found at {path}")
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
        from safetensors import safe_open  # metadata lives in the header
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise TexgenError(f"{path} is not a texgen model file (corrupt or truncated): {e}") from None
    if header.get("format") != FORMAT:
        raise TexgenError(f"{path} is not a texgen model (format {header.get('format')!r})")
    meta = {k: v for k, v in header.items() if k != "sha256"}
    if header.get("sha256") != _digest(tensors, meta):
        raise TexgenError(f"{path} has been modified or damaged: it fails its checksum")
    try:
        meta = {k: json.loads(v) for k, v in meta.items() if k != "format"}
    except ValueError:
        raise TexgenError(f"{path} is damaged: its metadata is not valid JSON") from None
    return tensors, meta


def model_kind(meta: dict) -> str:
    """The kind of model (texgen/kinds.py) a model or training file's metadata describes: its
    config's `kind`, or for files made before it, what the config implies."""
    from texgen.kinds import kind_of
    return kind_of(meta.get("config") or {}, meta.get("model"))


def model_path(path: str | Path) -> Path:
    """Accept either the model folder or its model.safetensors file."""
    p = Path(path)
    return p / MODEL_FILE if p.is_dir() else p


def save_model(folder: Path, generator: torch.nn.Module, info: dict) -> None:
    """info: {'config': model config dict, 'provenance': {...}, ...} stored as JSON."""
    _write(Path(folder) / MODEL_FILE, generator.state_dict(), info)


def load_model(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    return _read(model_path(path))


def update_model_info(path: str | Path, **info) -> dict:
    """Set entries of a model file's metadata (e.g. surface=...), weights untouched: the file
    is read (checksum verified), then rewritten atomically with a new checksum. Returns the
    metadata now stored."""
    target = model_path(path)
    tensors, meta = _read(target)
    meta.update(info)
    _write(target, tensors, meta)
    return meta


def training_info(folder) -> dict:
    """The metadata of a folder's training file (iteration, training config, provenance):
    what --resume continues."""
    return _read(Path(folder) / TRAIN_FILE)[1]


def save_training(folder: Path, G, D, opt_g, opt_d, rng: np.random.Generator, info: dict,
                  extra: dict | None = None) -> None:
    """D and opt_d may be None: methods without a discriminator (texnet, stylize). extra:
    more modules to keep, {prefix: module} (PSGAN's moving average of G, "E")."""
    tensors = {f"G.{k}": v for k, v in G.state_dict().items()}
    for prefix, module in {"D": D, **(extra or {})}.items():
        if module is not None:
            tensors.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
    groups = {}
    for name, opt in (("opt_g", opt_g), ("opt_d", opt_d)):
        if opt is None:
            continue
        sd = opt.state_dict()
        for idx, st in sd["state"].items():
            for key, val in st.items():
                tensors[f"{name}.{idx}.{key}"] = torch.as_tensor(val)
        groups[name] = sd["param_groups"]
    tensors["torch_rng"] = torch.get_rng_state()
    meta = dict(info, param_groups=groups, numpy_rng=rng.bit_generator.state)
    _write(Path(folder) / TRAIN_FILE, tensors, meta)


def load_training(folder: Path, G, D, opt_g, opt_d, extra: dict | None = None) -> tuple[np.random.Generator, dict]:
    """Restore what save_training kept; an extra module the file lacks (a run started before
    it was kept) starts as a copy of G."""
    tensors, meta = _read(Path(folder) / TRAIN_FILE)

    def part(prefix: str) -> dict:
        n = len(prefix) + 1
        return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    G.load_state_dict(part("G"))
    for prefix, module in {"D": D, **(extra or {})}.items():
        if module is not None:
            module.load_state_dict(part(prefix) or G.state_dict())
    for name, opt in (("opt_g", opt_g), ("opt_d", opt_d)):
        if opt is None:
            continue
        state: dict[int, dict] = {}
        for key, val in tensors.items():
            if key.startswith(name + "."):
                _, idx, field = key.split(".", 2)
                state.setdefault(int(idx), {})[field] = val
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"][name]})
    torch.set_rng_state(tensors["torch_rng"])
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["numpy_rng"]
    return rng, meta
