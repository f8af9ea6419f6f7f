"""The kinds of texgen model, by name: what a model config's `kind` field, a checkpoint's config
and an ONNX file's "kind" metadata say, and what every reader goes by (torch-free).

    psgan    PSGAN: global code, local noise and periodic waves (models/psgan.py)
    sgan     SGAN: PSGAN's generator with local noise only
    texnet   Texture Networks: multi-scale noise, Gram-loss trained (models/texnet.py)
    stylize  a Texture Network that paints over a content image (runtime/stylize.py)

Model files made before configs had a kind say it through their config alone: kind_of is the
one fallback for them.
"""

from __future__ import annotations

from texgen.errors import TexgenError

KINDS = ("psgan", "sgan", "texnet", "stylize")
# the model family (config class) of each kind
FAMILY = {"psgan": "psgan", "sgan": "psgan", "texnet": "texnet", "stylize": "texnet"}


def check_kind(kind: str, family: str | None = None) -> str:
    """kind, or TexgenError if it is not one of KINDS (of `family`, when given)."""
    if kind not in KINDS or (family is not None and FAMILY[kind] != family):
        allowed = [k for k in KINDS if family is None or FAMILY[k] == family]
        raise TexgenError(f"unknown model kind {kind!r}: texgen knows {', '.join(allowed)}")
    return kind


def kind_of(config: dict, model: str | None = None) -> str:
    """The kind a model config dict records, or for a file made before `kind` existed, the one
    its config implies: a texnet config ("levels"; or the checkpoint's "model": "texnet") with
    content channels is a stylisation net; a PSGAN config with neither global nor periodic
    channels is an SGAN."""
    if config.get("kind"):
        return check_kind(str(config["kind"]))
    if model == "texnet" or "levels" in config:
        return "stylize" if config.get("content") else "texnet"
    return "sgan" if config.get("n_global") == 0 and config.get("n_periodic") == 0 else "psgan"
