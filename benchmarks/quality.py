"""Texture quality: texgen (PSGAN and texnet, fast preset) against patch synthesis and the
photos themselves, and an ablation of PSGAN's training parts. One training at a time.

    python benchmarks/quality.py table     [--only conc01,brick] [--no-texnet | --method M] [--preset full] [--iters N | --minutes M]
    python benchmarks/quality.py ablation  [--only tile01_2x,floor_se01,grass_lush] [--minutes 15]
    python benchmarks/quality.py ab --only tile01,conc01 --iters 200 \
        --variant base: --variant spec100:spectrum_weight=100

Set-up beside texgen's: `pip install -e ".[bench]"` (scikit-image, for its photos) and, for
the patch-synthesis baseline, `pip install resynthesizer` (GPL-3.0: not in texgen's files).

Photos: the colour photos in ../shared/data/textures (--photos DIR: another folder; normal
maps `*_nm` skipped), and
scikit-image's brick, grass and gravel; the ablation also uses tile01 upscaled 2x
(`tile01_2x`: tiles of 128 px, the case where a 128 px patch shows one tile). Nothing happens
without the folder. The three ablation photos are the ones defaults were tuned on; every
other photo is held out and reported apart.

table: for each photo, texgen psgan and texnet trained with the fast preset's defaults
(`texgen train PHOTO [--method texnet]`), resynthesizer (PyPI, GIMP's patch-based synthesis,
GPL-3.0, installed by the benchmark's user, not a texgen dependency: a crop of the photo
made seamless the way GIMP's "make seamless" does), and the photo's own crops. Every metric
of texgen eval on 4 seeds at 512 px, plus time to usable: the first checkpoint at which the
texture_distance is at most 1.5x the photo's own crop-to-crop distance.
`--only` trains and scores those photos and keeps the other photos' cached rows. `--preset
full` trains with the full preset instead (meant for a GPU; its runs live apart, its table is
quality_full.md); `--iters N` trains N iterations instead of the preset's, `--minutes M` as
many as M minutes of this machine allow (measured on the first steps, on the device training
uses: benchmarks/gpu_check.py gives the full preset a GPU's few minutes so). A cached run
trained with other settings (its timing.json records them) is refused, not reused.

ablation: PSGAN on three photos, each row adding one part, every training given the same
wall-clock budget (--minutes; iterations = budget / seconds per step, measured on the
config first):
  before                 128 px patches, waves from peaks up to patch/2, one-pass batch norm
  + exact statistics     the same weights, batch norm calibrated layer by layer
  + period-aware         patch, batch, discriminator scales and waves from the clear periods
                         (no waves without one)
  + EMA                  the same run, painting with the moving average of G's weights
  + R1                   R1 penalty on D
  + descriptor (gram)    VGG-19 Gram loss on G's samples
  + descriptor (swd)     the same with Sliced Wasserstein instead of Gram
  texnet gram / swd      the Texture Network with each loss, same budget

ab: a quick A/B of training settings: the fast preset's PSGAN (or --method texnet) for
--iters iterations with each --variant's training config fields (LABEL:field=value,...;
m.field=value: the model config's; `base:` changes nothing) on each photo, scored
like the table at the last iteration, with time to usable over the snapshots every 50
iterations (texnet: 100). Results: benchmarks/out/quality_ab.md. A photo named NAME_Kx
(metal002_0.8x) is photo NAME resampled by K: a period that is no whole number of cells.

Models, snapshots and per-run results live in benchmarks/models/ (gitignored) and are reused:
a rerun skips finished work, and an interrupted training resumes. Contact sheets (exemplar |
two samples | 2x2 repeat) go to benchmarks/out/sheets/ (gitignored: the photos' licences).
Results: benchmarks/out/quality.md and quality_ablation.md; a section headed "## Looked at"
in either is kept when the tables are rewritten. The table's scores, and the settings each run
was trained with, are also kept in benchmarks/out/quality_results.json (in git): a machine
without the models cache lists the photos it did not train from there.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from texgen import checkpoint
from texgen.eval.report import EvalConfig, colour, evaluate_samples
from texgen.models.vgg import VGG19
from texgen.files import atomic_write_bytes
from texgen.runtime.imageio import read_image, save_image
from texgen.train.speed import iterations_within, seconds_per_step

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "textures"
MODELS = ROOT / "benchmarks" / "models" / "quality"
OUT = ROOT / "benchmarks" / "out"
TUNED = ("tile01_2x", "floor_se01", "grass_lush", "conc01")   # conc01: the lattice weight (2026-12-03)
METRICS = ["texture_distance", "histogram_distance", "spectrum_distance", "fine_energy",
           "checker_energy", "chroma_energy", "seam_score", "period_error", "cell_lattice",
           "cell_contrast", "diversity", "copy_score"]
BAR = 1.5                       # usable: texture_distance at most this x the photo's own
SETTLED = 3                     # checkpoints the settled distance averages: one alone swings
                                # late in a run, texnet's by up to a quarter between checkpoints
                                # 100 iterations apart (quality_ab.md, the forty-first session)
INERT_KEYS = {"wave_grid", "wave_along", "wave_shared", "repeat_weight",   # preset settings
              "chroma_weight", "chroma_from"}  # that train bit for bit as without them on
                                # some photos, whose rows then stand (_inert)


# ----------------------------------------------------------------------------- photos

def photos() -> dict[str, Path]:
    """name -> PNG/JPEG path: the shared photos, scikit-image's three, and tile01 at 2x."""
    found = {p.stem: p for p in sorted(DATA.iterdir())
             if p.suffix.lower() in (".png", ".jpg", ".jpeg") and not p.stem.endswith("_nm")}
    extra = MODELS / "_photos"
    extra.mkdir(parents=True, exist_ok=True)
    try:
        import skimage.data
        for name in ("brick", "grass", "gravel"):
            if name in found:       # a --photos folder that brings its own copy
                continue
            path = extra / f"{name}.png"
            if not path.exists():
                save_image(path, getattr(skimage.data, name)().astype(np.float32) / 255)
            found[name] = path
    except ImportError:
        print("scikit-image is not installed: its brick, grass and gravel are skipped")
    rescaled(found, ["tile01_2x"])
    return found


def rescaled(found: dict[str, Path], names: list[str]) -> None:
    """Add to found each NAME_Kx of names (the ablation's tile01_2x, ab's --only) not
    already there, whose NAME is: photo NAME resampled by K, e.g. metal002_0.8x, whose 25.2
    px lattice is no whole number of noise cells (wave_grid holds none of its waves, where
    it holds metal002's): as most photos'."""
    for name in names:
        m = re.fullmatch(r"(.+)_(\d+(?:\.\d+)?)x", name)
        if name in found or not m or m[1] not in found or not 0 < float(m[2]) <= 4:
            continue
        path = MODELS / "_photos" / f"{name}.png"
        if not path.exists():
            from PIL import Image
            im = Image.open(found[m[1]]).convert("RGB")
            k = float(m[2])
            im.resize((round(im.width * k), round(im.height * k)), Image.LANCZOS).save(path)
        found[name] = path


# ----------------------------------------------------------------------------- training

def _json(path: Path, data) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def _preset(method: str, preset: str = "fast") -> tuple:
    """(model config, training config) of the method's preset."""
    if method == "psgan":
        from texgen.train.psgan import PRESETS
        return PRESETS[preset]
    from texgen.models.texnet import TexNetConfig
    from texgen.train.texnet import PRESETS
    return TexNetConfig(), PRESETS[preset]


def _timing(key: str) -> dict:
    path = MODELS / key / "timing.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _settings(mcfg, tcfg) -> dict:
    """What a run was trained with, as JSON: its training and model configs, less the
    iteration counts the benchmark sets."""
    return json.loads(json.dumps({
        "train": {k: v for k, v in asdict(tcfg).items() if k not in ("iters", "ckpt_every", "preview_every")},
        **({"model": asdict(mcfg)} if mcfg else {})}))


def _changed(then: dict | None, mcfg, tcfg) -> list[str]:
    """Of the settings a cached run was trained with (its timing.json's, or the ledger's;
    None: not recorded), those that differ from these ([] where none do or none were
    recorded): a cache trained with other settings, e.g. before a preset changed, must not
    pass for this one."""
    if not then:
        return []
    now = _settings(mcfg, tcfg)
    # a field the record lacks was added to the configs since: the run had its default
    default = _settings(type(mcfg)() if mcfg else None, type(tcfg)())
    return sorted(k for part in now for k in now[part]
                  if then.get(part, {}).get(k, default[part][k]) != now[part][k])


def _stale(then: dict | None, photo: Path, mcfg, tcfg) -> list[str]:
    """_changed, less the preset settings this photo's training does not use (_inert): a
    cached run or a ledger row trained before the preset turned them on trains as it would
    now, so it stands (they are neither counted nor listed as differences)."""
    changed = _changed(then, mcfg, tcfg)
    if set(changed) & INERT_KEYS:
        inert = _inert(photo, mcfg, tcfg)
        changed = [k for k in changed if k not in inert]
    return changed


# settings of what runs after training
AFTER_TRAINING = {"clean_within", "clean_fine", "pick_last", "pick_margin"}


def train_run(key: str, method: str, photo: Path, img: np.ndarray, tcfg=None, mcfg=None,
              minutes: float | None = None, snapshots: int = 10, preset: str = "fast") -> Path:
    """Train (or finish training) benchmarks/models/quality/<key>; keeps a snapshot of the
    model (and of the training state, for the no-average variant) at every checkpoint and
    the wall time of training in timing.json. minutes: iterations from that budget."""
    folder = MODELS / key
    timing_path = folder / "timing.json"
    timing = _timing(key)
    if method == "psgan":
        from texgen.train.psgan import train
    else:
        from texgen.train.texnet import train
    default = _preset(method, preset)
    mcfg, tcfg = mcfg or default[0], tcfg or default[1]
    changed = _stale(timing.get("settings"), photo, mcfg, tcfg)
    model_file = folder / "model" / checkpoint.MODEL_FILE
    if changed and set(changed) <= AFTER_TRAINING and model_file.exists():
        # the pick and the clean-up run after training and change nothing before it: a run
        # cached with other such settings ends again from its snapshots (the models as
        # training left them, one at each of its checkpoints), as its training would have
        # ended (its snapshots, and so its time to usable, are the same)
        from texgen.train.cleanup import finish, is_candidate
        print(f"{folder}: ended with other settings ({', '.join(changed)}); "
              "ending it again", flush=True)
        ends = {int(f.stem.split("_")[-1]): f
                for f in (folder / "snapshots").glob("model_*.safetensors")}
        last = max(ends)
        atomic_write_bytes(model_file, ends[last].read_bytes())
        # (texnet has no clean-up: its pick alone); the snapshots training would pick among
        finish(folder / "model", [img], tcfg,
               candidates=[f for it, f in ends.items() if is_candidate(it, last, tcfg)])
        timing["settings"] = _settings(mcfg, tcfg)
        _json(timing_path, timing)
        (MODELS / key / "final" / "result.json").unlink(missing_ok=True)
        changed = []
    if changed:
        raise SystemExit(f"{folder} was trained with other settings ({', '.join(changed)}): "
                         "move it away to train it again")
    if "settings" not in timing and timing:
        print(f"{folder}: trained before settings were recorded; reused as is", flush=True)
    if "iters" not in timing:
        timing["settings"] = _settings(mcfg, tcfg)
        iters = tcfg.iters
        if minutes:
            secs = seconds_per_step(method, img, tcfg, mcfg)
            iters = max(50, iterations_within(minutes, secs) // 50 * 50)   # snapshots every 50
            timing["probe_s_per_step"] = secs
        timing.update(iters=iters, seconds=0.0)
        folder.mkdir(parents=True, exist_ok=True)
        _json(timing_path, timing)
    iters = timing["iters"]
    every = max(50, iters // snapshots // 50 * 50)
    tcfg = replace(tcfg, iters=iters, ckpt_every=every, preview_every=every)
    snaps = folder / "snapshots"
    snaps.mkdir(parents=True, exist_ok=True)

    def on_save(it, out):
        shutil.copyfile(out / checkpoint.MODEL_FILE, snaps / f"model_{it:05d}.safetensors")
        if method == "psgan":
            shutil.copyfile(out / checkpoint.TRAIN_FILE, snaps / f"training_{it:05d}.safetensors")

    done = checkpoint.load_model(model_file)[1].get("iteration", 0) if model_file.exists() else 0
    if done >= iters:
        return folder
    resume = (folder / "model" / checkpoint.TRAIN_FILE).exists()
    print(f"training {key}: {iters} iterations{' (resuming)' if resume else ''}", flush=True)
    prov = {"method": method, "preset": preset, "exemplars": [photo.name], "licence": "as the photo"}
    t0 = time.perf_counter()
    try:
        train([img], folder / "model", mcfg, tcfg, resume=resume, provenance=prov, on_save=on_save)
    finally:
        timing["seconds"] += time.perf_counter() - t0
        _json(timing_path, timing)
    return folder


def legacy_calibrate(G, cells: int, batches: int = 20, batch: int = 8, seed: int = 0) -> None:
    """The batch-norm calibration texgen 0.1 used, kept here only for the ablation's
    'before' row: every layer measured in one eval pass while the layers before it still
    normalised by a training-mode average that the pass then replaced."""
    from texgen.runtime.noise import sample_noise
    rng = torch.Generator().manual_seed(seed)
    zs = [torch.from_numpy(sample_noise(G.cfg.layout, cells, cells,
                                        seed=int(torch.randint(1 << 30, (1,), generator=rng)),
                                        batch=batch)) for _ in range(batches)]
    bns = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        G.train()
        for z in zs:
            G(z)
        G.eval()
        sums = {m: [0, 0.0, 0.0] for m in bns}

        def hook(m, inputs):
            x = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()
            sums[m][0] += x.shape[1]
            sums[m][1] = sums[m][1] + x.sum(1)
            sums[m][2] = sums[m][2] + (x * x).sum(1)
        hooks = [m.register_forward_pre_hook(hook) for m in bns]
        for z in zs:
            G(z)
        for h in hooks:
            h.remove()
        for m in bns:
            n, s1, s2 = sums[m]
            m.running_mean.copy_(s1 / n)
            m.running_var.copy_((s2 / n - (s1 / n) ** 2).clamp_min(0) * n / (n - 1))
            m.momentum = 0.1


def variant(snapshot_dir: Path, it: int, kind: str) -> Path:
    """A model file painting the psgan run's snapshot at `it` another way: 'raw' (the trained
    G, not its moving average) or 'legacy' (texgen 0.1's batch-norm calibration)."""
    from texgen.models.psgan import Generator, PSGANConfig
    from texgen.train.batchnorm import calibrate_batchnorm
    path = snapshot_dir / f"{kind}_{it:05d}.safetensors"
    if path.exists():
        return path
    tensors, meta = checkpoint.load_model(snapshot_dir / f"training_{it:05d}.safetensors")
    G = Generator(PSGANConfig.from_dict(meta["config"]))
    G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
    cells = meta["train"]["patch"] // G.cfg.scale + 2 * G.margin
    (legacy_calibrate if kind == "legacy" else calibrate_batchnorm)(G, cells=cells, seed=it)
    info = {k: meta[k] for k in ("config", "train", "provenance", "iteration")}
    tmp = path.parent / f".{kind}"
    tmp.mkdir(exist_ok=True)
    checkpoint.save_model(tmp, G.eval(), info)
    (tmp / checkpoint.MODEL_FILE).rename(path)
    return path


# ----------------------------------------------------------------------------- scoring

def paint_samples(model: Path, cfg: EvalConfig) -> list[np.ndarray]:
    from texgen.paint import TorchPainter
    p = TorchPainter(model)
    return [colour(p, p.paint(cfg.size, cfg.size, seed=s)) for s in cfg.seeds]


def score(samples, img, cfg, vgg) -> dict:
    r = evaluate_samples(samples, img, cfg, vgg)
    return {"metrics": r.metrics, "baseline": r.baseline}


def time_to_usable(snaps: Path, prefix: str, img, cfg, vgg, baseline: float, kind=None) -> dict:
    """texture_distance at every snapshot, and the first iteration at which it is at most
    BAR x the photo's own (None: never)."""
    curve = {}
    for f in sorted(snaps.glob(f"{prefix}_*.safetensors")):
        it = int(f.stem.split("_")[-1])
        model = variant(snaps, it, kind) if kind else f
        samples = paint_samples(model, cfg)
        curve[it] = score(samples, img, cfg, vgg)["metrics"]["texture_distance"]
    first = next((it for it, d in sorted(curve.items()) if d <= BAR * baseline), None)
    return {"curve": curve, "usable_at": first}


def contact_sheet(name: str, img: np.ndarray, samples: list[np.ndarray]) -> Path:
    """exemplar | sample 1 | sample 2 | sample 1 repeated 2 x 2 (halved), 512 px each."""
    from PIL import Image

    def fit(a):
        im = Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))
        return np.asarray(im.resize((512, 512), Image.LANCZOS), np.float32) / 255
    tiles = [fit(img), samples[0], samples[1], fit(np.tile(samples[0], (2, 2, 1)))]
    gap = np.ones((512, 8, 3), np.float32)
    path = OUT / "sheets" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, np.concatenate(sum(([t, gap] for t in tiles), [])[:-1], axis=1))
    return path


def result(key: str, compute) -> dict:
    """Cached per run: benchmarks/models/quality/<key>/result.json."""
    path = MODELS / key / "result.json"
    if path.exists():
        return json.loads(path.read_text())
    r = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    _json(path, r)
    return r


def resynth_samples(img: np.ndarray, cfg: EvalConfig) -> list[np.ndarray]:
    from PIL import Image
    from resynthesizer import resynthesize
    rng = np.random.default_rng(0)
    out = []
    for _ in cfg.seeds:
        crop = _crop_or_tile(img, cfg.size, rng)
        n = crop.shape[0]
        shifted = np.roll(crop, (n // 2, n // 2), axis=(0, 1))    # old edges -> a centre cross
        band = max(8, n // 12)
        mask = np.zeros((n, n), np.uint8)
        mask[n // 2 - band:n // 2 + band] = 255
        mask[:, n // 2 - band:n // 2 + band] = 255
        res = resynthesize(Image.fromarray((shifted * 255).round().astype(np.uint8)),
                           Image.fromarray(mask))
        out.append(np.asarray(res, np.float32) / 255)
    return out


def _crop_or_tile(img, size, rng):
    if min(img.shape[:2]) < size:                   # small photo: tile it up first
        img = np.tile(img, (-(-size // img.shape[0]), -(-size // img.shape[1]), 1))
    y = rng.integers(0, img.shape[0] - size + 1)
    x = rng.integers(0, img.shape[1] - size + 1)
    return img[y:y + size, x:x + size]


def run_model(key, method, photo, img, cfg, vgg, tcfg=None, mcfg=None, minutes=None,
              kinds=(None,), snapshots: int = 10, preset: str = "fast") -> dict:
    """Train key and score it; kinds: None (the saved model) and/or 'raw' / 'legacy'
    variants of a psgan run. Returns {kind: result}."""
    folder = train_run(key, method, photo, img, tcfg, mcfg, minutes, snapshots, preset)
    timing = json.loads((folder / "timing.json").read_text())
    out = {}
    for kind in kinds:
        def compute():
            snaps = folder / "snapshots"
            final = timing["iters"]
            model = variant(snaps, final, kind) if kind not in (None, "ema") else folder / "model"
            samples = paint_samples(model, cfg)
            contact_sheet(f"{key.replace('/', '_')}{'_' + kind if kind else ''}", img, samples)
            r = score(samples, img, cfg, vgg)
            r.update(iters=final, train_seconds=timing["seconds"],
                     painted=checkpoint.load_model(model)[1].get("painted"),
                     **time_to_usable(snaps, "model" if kind in (None, "ema") else "training",
                                      img, cfg, vgg, r["baseline"]["texture_distance"],
                                      None if kind == "ema" else kind))
            return r
        out[kind] = result(f"{key}/{kind or 'final'}", compute)
    return out


# ----------------------------------------------------------------------------- tables

def _keep_notes(path: Path, text: str) -> str:
    if path.exists():
        old = path.read_text()
        i = old.find("\n## Looked at")
        if i >= 0:
            text = text.rstrip() + "\n" + old[i:]
    return text


def settled(r: dict) -> float | None:
    """The mean texture_distance of a run's last SETTLED checkpoints, as training saved them
    (before the pick, and PSGAN's clean-up); None: a run with no curve (resynthesizer)."""
    curve = r.get("curve") or {}
    last = sorted(curve, key=int)[-SETTLED:]        # keys are str once read back from JSON
    return float(np.mean([curve[k] for k in last])) if len(last) == SETTLED else None


def _row(name: str, method: str, m: dict, base: dict, extra: str = "", r: dict | None = None) -> str:
    td, own = m["texture_distance"], base["texture_distance"]
    s = settled(r) if r else None
    return (f"| {name} | {method} | {td:.3f} | {td / own:.2f} | "
            + " | ".join(f"{m[k]:.3f}" if k in m else "-" for k in METRICS[1:])
            + (f" | {s:.3f} ({s / own:.2f}x)" if s is not None else " | ")
            + f" | {extra} |")         # "-": scored before the metric existed


HEADER = ("| photo | method | texture_distance | x photo's | " + " | ".join(METRICS[1:])
          + f" | last {SETTLED} checkpoints (x photo's) | usable at (iteration of s) |")
RULE = "|" + "---|" * (HEADER.count("|") - 1)       # one per column, or it is no table


def table(args, found, cfg, vgg):
    names = [n for n in found if n != "tile01_2x" or "tile01_2x" in (args.only or "")]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    # the fast preset's runs live in table/, another preset's in table_PRESET/ (resynthesizer's
    # samples do not depend on it: they stay in table/)
    root = "table" if args.preset == "fast" else f"table_{args.preset}"
    presets = {m: _preset(m, args.preset) for m in ("psgan", "texnet")}
    if args.iters:
        presets = {m: (mc, replace(tc, iters=args.iters)) for m, (mc, tc) in presets.items()}
    methods = ((args.method,) if args.method else
               ("psgan",) + (() if args.no_texnet else ("texnet",)))
    path = _ledger_path(args.preset)
    ledger = json.loads(path.read_text()) if path.exists() else {}
    rows = {}
    for name in names:
        img = read_image(found[name])
        res = {}
        for method in ("psgan", "texnet"):
            label = f"texgen {method}"
            if method in methods:
                mcfg, tcfg = presets[method]
                res[label] = run_model(f"{root}/{name}/{method}", method, found[name], img,
                                       cfg, vgg, tcfg, mcfg, minutes=args.minutes,
                                       snapshots=args.snapshots, preset=args.preset)[None]
            elif label in ledger.get(name, {}).get("results", {}):
                # a method not trained this run (--method, --no-texnet): its row stays as
                # the ledger has it
                res[label] = ledger[name]["results"][label]

        def peer(fn, label):
            def compute():
                samples = fn()
                contact_sheet(f"table_{name}_{label}", img, samples)
                return score(samples, img, cfg, vgg)
            return result(f"table/{name}/{label}", compute)
        try:
            res["resynthesizer"] = peer(lambda: resynth_samples(img, cfg), "resynthesizer")
        except ImportError as e:
            print(f"resynthesizer skipped: {e}")
        rows[name] = _table_rows(name, res)
        print("\n".join(rows[name][2]), flush=True)
    ledger = _record(args.preset, root, rows)
    earlier = _cached_rows(found, names, root, presets, rows, ledger)
    # what `texgen train PHOTO` trains by default (--method auto), photo by photo
    from texgen.train.common import choose_method
    auto = {name: choose_method([read_image(found[name])])[0] for name in rows}
    write_table(dict(sorted(rows.items())), cfg, args.preset, dict(sorted(earlier.items())),
                auto, args.minutes, args.iters)


def _ledger_path(preset: str) -> Path:
    return OUT / ("quality_results.json" if preset == "fast" else f"quality_{preset}_results.json")


def _run_settings(root: str, name: str, res: dict) -> dict:
    """label -> the settings each texgen run of the photo was trained with (None: not
    recorded), from its timing.json."""
    return {label: _timing(f"{root}/{name}/{label.split()[1]}").get("settings")
            for label in res if label.startswith("texgen ")}


def _record(preset: str, root: str, rows: dict) -> dict:
    """Add the photos just scored to the ledger (benchmarks/out/quality_results.json, kept in
    git): their results and the settings each method was trained with. The models folder is
    a cache that a new machine does not have; the ledger is what lets `--only` add to the
    table there instead of replacing it. Read just before writing, so that two tables
    trained side by side both end up in it. Returns the ledger as written."""
    path = _ledger_path(preset)
    ledger = json.loads(path.read_text()) if path.exists() else {}
    for name, (res, _, _) in rows.items():
        # a row kept from the ledger (table --method) has no run here: keep its settings
        settings = (ledger.get(name) or {}).get("settings", {})
        settings.update({label: s for label, s in _run_settings(root, name, res).items()
                         if s is not None or label not in settings})
        ledger[name] = {"results": res, "settings": settings}
    ledger = dict(sorted(ledger.items()))
    _json(path, ledger)
    return ledger


def _cached_rows(found, names, root, presets, rows, ledger: dict) -> dict:
    """Add to rows the photos not asked for, from their cached results and, for the runs
    this machine has no cache of, from the ledger (_record's): `--only` adds to the table instead of
    replacing it. Read after training, so that of two tables trained side by side the one
    that ends last lists both. Returns the photos with rows trained with other settings
    (those rows are listed apart)."""
    earlier = {}
    for name in found:
        if name in names:
            continue
        cached = {label: json.loads(f.read_text()) for label, f in (
            (label, MODELS / sub / "result.json") for label, sub in (
                ("texgen psgan", f"{root}/{name}/psgan/final"),
                ("texgen texnet", f"{root}/{name}/texnet/final"),
                ("resynthesizer", f"table/{name}/resynthesizer"))) if f.exists()}
        # what this machine has cached stands over the ledger's, run by run: a cache holding
        # the photo's psgan run alone keeps the ledger's texnet and resynthesizer rows
        ledgered = ledger.get(name, {})
        res = {**ledgered.get("results", {}), **cached}
        settings = {**ledgered.get("settings", {}), **_run_settings(root, name, cached)}
        changed = {label: _stale(settings.get(label), found[name], *presets[method])
                   for label, method in (("texgen psgan", "psgan"), ("texgen texnet", "texnet"))
                   if label in res}
        stale = [label for label, keys in changed.items() if keys]
        if stale:
            # only those rows: the photo's others still stand (its texnet row trained
            # before texnet's preset changed does not take its psgan row out of the verdicts)
            print(f"{name}: {', '.join(stale)} trained with other settings; listed apart",
                  flush=True)
            earlier[name] = (sorted({k for keys in changed.values() for k in keys}),
                             _table_rows(name, {label: res[label] for label in stale})[2])
        fresh = {label: r for label, r in res.items() if label not in stale}
        if fresh.keys() & {"texgen psgan", "texgen texnet"}:
            # a photo whose psgan row is stale keeps its texnet row (and resynthesizer's)
            # in the verdicts: a PSGAN preset change leaves texnet's rows standing
            rows[name] = _table_rows(name, fresh)
    return earlier


def _inert(photo: Path, mcfg, tcfg) -> set[str]:
    """Of INERT_KEYS, those the preset's training of this photo does not use, so that a row
    trained before the preset turned them on still stands (tests/test_training.py and
    test_texnet.py check each bit for bit): the chroma cap on a grey photo (SpectrumLoss
    leaves it out there); and for PSGAN, wave_grid where it holds none of the photo's
    starting waves, wave_along and wave_shared where it holds them (a held wave keeps its
    direction and length), and repeat_weight where no held lattice's tile fits the patch
    (repeat_block 0)."""
    from texgen.eval.metrics import is_grey
    from texgen.models.texnet import TexNetConfig
    from texgen.train.psgan import configure, held_waves, repeat_block
    img = read_image(photo)
    grey = {"chroma_weight", "chroma_from"} if is_grey(img[..., :3]) else set()
    if isinstance(mcfg, TexNetConfig):
        return grey
    model_cfg, cfg = configure([img], mcfg, tcfg, log=lambda *a: None)
    held = held_waves(model_cfg) > 0
    unused = {"wave_grid": not held, "wave_along": held, "wave_shared": held,
              "repeat_weight": not repeat_block(model_cfg, cfg.patch)}
    return grey | {k for k, off in unused.items() if off}


def _table_rows(name: str, res: dict) -> tuple:
    """(results by method, the photo's own scores, the table lines) of one photo."""
    base = next(iter(res.values()))["baseline"]
    lines = []
    for method, r in res.items():
        lines.append(_row(name, method, r["metrics"], base,
                          _usable(r, minutes=True) if "usable_at" in r else "", r))
    lines.append(_row(name, "*photo itself*", base, base))
    return res, base, lines


def _device() -> str:
    """Where this run trains and paints, for the table's header."""
    if torch.cuda.is_available():
        return f"CUDA, {torch.cuda.get_device_name()}"
    return f"the CPU, {torch.get_num_threads()} threads"


def _verdicts(rows, auto: dict | None = None) -> list[str]:
    """auto: photo -> the method `texgen train` picks for it by default (--method auto); its
    rows are judged as one more method, 'texgen default'."""
    both, default = ("texgen psgan", "texgen texnet"), ("texgen default",) if auto else ()
    groups = [("tuned on", [n for n in rows if n in TUNED], both + default),
              ("held out", [n for n in rows if n not in TUNED], both + default)]
    if auto:
        groups.append(("all", list(rows), default))

    def td(n, label):
        return rows[n][0][label]["metrics"]["texture_distance"]

    def bars(dist: dict) -> str:
        """The two targets, for each photo's distance in dist (photo -> texture_distance)."""
        bar = [n for n in dist if dist[n] <= BAR * rows[n][1]["texture_distance"]]
        beat = [n for n in dist if "resynthesizer" in rows[n][0] and dist[n] <= td(n, "resynthesizer")]
        return (f"within {BAR}x the photo's own distance on {len(bar)} ({', '.join(bar) or 'none'}); "
                f"at most resynthesizer's on {len(beat)} ({', '.join(beat) or 'none'})")

    out = []
    for group, names, methods in groups:
        for method in methods:
            # the row each photo is judged by: the method's own, or the one auto picks
            label = {n: f"texgen {auto[n]}" if method == "texgen default" else method
                     for n in names}
            have = [n for n in names if label[n] in rows[n][0]]
            if not have:
                continue
            missing = [n for n in names if n not in have]
            out.append(f"- {method}, {group} ({len(have)} photos): "
                       + bars({n: td(n, label[n]) for n in have})
                       + (f"; not yet trained with its method: {', '.join(missing)}"
                          if method == "texgen default" and missing else ""))
    if auto:
        # the same bars on the settled distance, which one lucky or unlucky last checkpoint
        # does not move (the snapshots before the pick, and PSGAN's clean-up)
        s = {n: settled(rows[n][0][f"texgen {auto[n]}"]) for n in rows
             if f"texgen {auto[n]}" in rows[n][0]}
        s = {n: v for n, v in s.items() if v is not None}
        out.append(f"- texgen default, all, by the mean of its last {SETTLED} checkpoints "
                   f"({len(s)} photos): " + bars(s))
    return out


def write_table(rows, cfg, preset: str = "fast", earlier=None, auto=None, minutes=None,
                iters=None):
    """earlier: photo -> (settings that changed, table lines) of runs trained before the
    preset changed: listed apart, not in the verdicts, until they are trained again.
    minutes, iters: each training's budget, when the table was run with one."""
    path = OUT / ("quality.md" if preset == "fast" else f"quality_{preset}.md")
    opt = "" if preset == "fast" else f" --preset {preset}"
    budget = f" --minutes {minutes:g}" if minutes else f" --iters {iters}" if iters else ""
    lines = ["# Texture quality: texgen against patch synthesis and the photos", "",
             f"Command: `python benchmarks/quality.py table{opt}{budget}` (one training at a "
             f"time{f', each trained for as many iterations as {minutes:g} minutes allow' if minutes else ''}; "
             f"this run on {_device()}). "
             f"texgen: the {preset} preset's defaults (`texgen train PHOTO{opt} --method psgan`, "
             "and `--method texnet`; the iterations each run had are in its last column; "
             "'texgen default' in the verdicts: the one of the two that `texgen train PHOTO` "
             "trains, --method auto: texnet on a photo with no clear period, psgan on the "
             "others). Samples: seeds "
             f"{', '.join(map(str, cfg.seeds))} at {cfg.size} px; VGG-19 crops of {cfg.crop} px. "
             "*photo itself*: the photo's crops against the photo (the floor; its seam_score "
             "is the photo's own seam). 'x photo's' is texture_distance over the photo's own; "
             f"the target is at most {BAR}. fine_energy: energy in the finest octave over the "
             "photo's (0.25-0.5 cycles per px; target 0.8-1.2: above is speckle, below blur). "
             "checker_energy: energy beyond 0.5 cycles per px, in the spectrum's corners, where "
             "a 1 px checkerboard lies and fine_energy does not look, over the photo's (a halftone "
             "shows as many times 1; '-': scored before it existed). chroma_energy: the "
             "colour less its brightness, finer than 4 px (beyond 0.25 cycles per px), over "
             "the photo's: fine colour speckle, which fine_energy (brightness) misses; a "
             "camera's photo has little there ('-': scored before it existed, or a grey "
             "photo, over whose no colour it means nothing). cell_lattice: the share "
             "of the samples' variance in one motif repeated in every 32 px noise cell, a "
             "fine woven lattice (the photo's own crops: chance; '-': scored before it "
             "existed). cell_contrast: how much the contrast and edges sit at the same places "
             "in every cell, a grid of square blocks, pooled over the four samples (the photo: "
             f"as much of it in crops; 0 is even). last {SETTLED} checkpoints: the mean "
             f"texture_distance of the run's last {SETTLED} checkpoints as training saved them "
             "(before the pick, and PSGAN's clean-up), and over the photo's own: late "
             "weights swing, so one checkpoint alone can cross the bar by luck (texnet's "
             "by up to a quarter between checkpoints 100 iterations apart). usable at: the first "
             f"checkpoint within {BAR}x the photo's own distance. Tuned on: "
             f"{', '.join(TUNED)}; every other photo is held out.", "",
             "## Verdicts", "", *_verdicts(rows, auto), "", "## Every photo", "", HEADER,
             RULE]
    for name, (_, _, rl) in rows.items():
        lines += rl
    if earlier:
        lines += ["", "## Not yet trained again since the preset changed", "",
                  "Their last runs, for reference only: not in the verdicts above. Settings "
                  "that differ from the preset now: "
                  + "; ".join(f"{n}: {', '.join(keys)}" for n, (keys, _) in earlier.items())
                  + ".", "", HEADER, RULE]
        for _, rl in earlier.values():
            lines += rl
    atomic_write_bytes(path, _keep_notes(path, "\n".join(lines) + "\n").encode())
    print(f"wrote {path}")


# The descriptor recipe (part 4): found on floor_se01 before the ablation (15 min at 2 threads:
# td 0.156 for the trained G against 0.273 without the term); 256 px patches because relu5_1
# sees 16 x 16 positions of them (8 x 8 of 128 px ones), a 5x higher learning rate because
# the texture loss converges at texnet's rates, not a GAN's.
DESCRIPTOR = dict(descriptor_weight=100.0, lr=1e-3, patch=256, batch=2)
# texgen 0.1's fast preset, before the descriptor became its default
GAN_ONLY = dict(descriptor_weight=0.0, lr=2e-4, patch=128, batch=8, loss="gram")


def _mean_ratio(results: list[dict]) -> float:
    """Mean over photos of texture_distance / the photo's own."""
    return float(np.mean([r["metrics"]["texture_distance"] / r["baseline"]["texture_distance"]
                          for r in results]))


def ablation(args, found, cfg, vgg):
    """Part-major: each part is trained on every photo, then kept for the following rows only
    if it lowered the mean texture_distance ratio over the photos (EMA and R1); the
    descriptor rows are each compared with the best before them."""
    from texgen.train.psgan import PRESETS, wave_init
    from texgen.train.texnet import PRESETS as TEXNET
    names = args.only.split(",") if args.only else list(TUNED)
    imgs = {n: read_image(found[n]) for n in names}
    mcfg, tcfg = PRESETS["fast"]
    tcfg = replace(tcfg, **GAN_ONLY)       # the rows start from texgen 0.1's fast training
    rows = {n: [] for n in names}
    decisions = []

    def psgan(key, over, kinds, label_of, m=None):
        out = {}
        for n in names:
            mm = m(imgs[n]) if m else mcfg
            res = run_model(f"ablation/{n}/{key}", "psgan", found[n], imgs[n], cfg, vgg,
                            replace(tcfg, **over), mm, args.minutes, kinds=kinds,
                            snapshots=args.snapshots)
            for kind in kinds:
                rows[n].append(_ablation_row(n, label_of[kind], res[kind]))
                print(rows[n][-1], flush=True)
            out[n] = res
        return {kind: [out[n][kind] for n in names] for kind in kinds}

    old = dict(auto_patch=False, auto_waves=False)
    r = psgan("a_before", old, ("legacy", "raw"),
              {"legacy": "before", "raw": "+ exact statistics"},
              m=lambda img: replace(mcfg, init_k=wave_init([img], mcfg, np.zeros((0, 2)), tcfg.patch / 2)))
    best = _mean_ratio(r["raw"])
    kept = {}
    r = psgan("c_period", dict(ema=0.999), ("raw", "ema"),
              {"raw": "+ period-aware", "ema": "+ EMA (0.999)"})
    best = min(best, _mean_ratio(r["raw"]))
    if _mean_ratio(r["ema"]) < _mean_ratio(r["raw"]):
        kept["ema"] = 0.999
    decisions.append(f"EMA: mean ratio {_mean_ratio(r['ema']):.2f} painting the average against "
                     f"{_mean_ratio(r['raw']):.2f} painting the trained G: "
                     f"{'kept' if kept.get('ema') else 'dropped'}")
    kind = "ema" if kept.get("ema") else "raw"
    r1 = psgan("e_r1", dict(ema=0.999, r1=1.0), (kind,), {kind: "+ R1 (weight 1)"})[kind]
    if _mean_ratio(r1) < best:
        kept["r1"] = 1.0
    decisions.append(f"R1: mean ratio {_mean_ratio(r1):.2f} against {best:.2f} before it: "
                     f"{'kept' if kept.get('r1') else 'dropped'}")
    best = min(best, _mean_ratio(r1))
    for loss in ("gram", "swd"):
        over = dict(ema=0.999, **{k: v for k, v in kept.items() if k != "ema"}, **DESCRIPTOR, loss=loss)
        # both ways: the descriptor's higher learning rate moves G further between steps,
        # which may change what its moving average is worth
        d = psgan(f"desc_{loss}", over, ("raw", "ema"),
                  {"raw": f"+ descriptor ({loss})", "ema": f"+ descriptor ({loss}), EMA"})
        decisions.append(f"descriptor ({loss}): mean ratio {_mean_ratio(d['raw']):.2f} (trained G), "
                         f"{_mean_ratio(d['ema']):.2f} (its average), against {best:.2f} without it")
    for loss in ("gram", "swd"):
        t = []
        for n in names:
            res = run_model(f"ablation/{n}/texnet_{loss}", "texnet", found[n], imgs[n], cfg, vgg,
                            replace(TEXNET["fast"], loss=loss), None, args.minutes,
                            snapshots=args.snapshots)[None]
            rows[n].append(_ablation_row(n, f"texnet ({loss})", res))
            print(rows[n][-1], flush=True)
            t.append(res)
        decisions.append(f"texnet ({loss}): mean ratio {_mean_ratio(t):.2f}")
    lines = []
    for n in names:
        base = json.loads((MODELS / f"ablation/{n}/a_before/raw/result.json").read_text())["baseline"]
        lines += rows[n] + [_row(n, "*photo itself*", base, base)]
    path = OUT / "quality_ablation.md"
    text = "\n".join([
        "# PSGAN training parts, one at a time", "",
        f"Command: `python benchmarks/quality.py ablation --minutes {args.minutes:g} --threads "
        f"{args.threads} --snapshots {args.snapshots}`. Every training gets {args.minutes:g} minutes "
        f"on {args.threads} thread(s) (iterations = the budget / the seconds a step of that "
        "configuration takes, measured first); rows that name the same run paint its weights "
        "two ways (legacy or exact batch-norm statistics; the trained G or its moving average). "
        "Parts are added in order and kept only if they lowered the mean texture_distance ratio "
        "over the three photos. Samples: seeds "
        f"{', '.join(map(str, cfg.seeds))} at {cfg.size} px. Columns as in quality.md.", "",
        "## Decisions", "", *[f"- {d}" for d in decisions], "",
        "## Every run", "", HEADER, RULE, *lines]) + "\n"
    atomic_write_bytes(path, _keep_notes(path, text).encode())
    print(f"wrote {path}")


def ab(args, found, cfg, vgg):
    """Each --variant on each --only photo for --iters iterations: one table, photo-major."""
    mcfg, tcfg = _preset(args.method)
    variants = []
    for v in args.variant:
        label, _, fields = v.partition(":")
        try:    # values are JSON: true, 4, "swd"; a typo is a one-line error, not a traceback
            over = {k: json.loads(x) for k, x in (f.split("=", 1) for f in fields.split(",") if f)}
        except ValueError as e:
            raise SystemExit(f"--variant {v}: want LABEL:FIELD=JSON,... ({e})")
        model = {k[2:]: x for k, x in over.items() if k.startswith("m.")}   # m.FIELD: the model's
        train = {k: x for k, x in over.items() if not k.startswith("m.")}
        try:
            variants.append((label, replace(tcfg, iters=args.iters, **train),
                             replace(mcfg, **model) if model else mcfg))
        except TypeError as e:      # a field the config lacks
            raise SystemExit(f"--variant {v}: {e}")
    lines = []
    for n in args.only.split(","):
        img = read_image(found[n])
        for label, t, m in variants:
            key = f"ab/{n}/{label}" if args.method == "psgan" else f"ab/{n}/texnet_{label}"
            r = run_model(key, args.method, found[n], img, cfg, vgg, t, m,
                          snapshots=args.iters // (50 if args.method == "psgan" else 100))[None]
            lines.append(_row(n, label, r["metrics"], r["baseline"], _usable(r), r))
            print(lines[-1], flush=True)
        lines.append(_row(n, "*photo itself*", r["baseline"], r["baseline"]))
    path = OUT / "quality_ab.md"
    cmd = " ".join(["python benchmarks/quality.py ab --only", args.only, "--iters", str(args.iters),
                    *(["--method texnet"] if args.method == "texnet" else []),
                    *(f"--variant {v}" for v in args.variant)])
    section = "\n".join([f"## `{cmd}`", "", HEADER, RULE, *lines, ""])
    # one section per command: a rerun replaces its own, other A/Bs and the notes stay
    old = path.read_text() if path.exists() else ""
    kept = [s for s in old.split("\n## ")[1:] if not s.startswith(f"`{cmd}`") and
            not s.startswith("Looked at")]
    text = "\n".join([
        "# A/B of training settings", "",
        "`python benchmarks/quality.py ab`: the fast preset's PSGAN (or texnet, where the "
        "command says), each variant changing the training config fields after its label, trained for the same iterations on each photo, "
        f"--threads {args.threads}; samples: seeds {', '.join(map(str, cfg.seeds))} at {cfg.size} px. "
        "Columns as in quality.md; usable at: the first snapshot (every 50 iterations; "
        "texnet: 100) at "
        f"which texture_distance is at most {BAR}x the photo's own. One section per command.", "",
        *("## " + s.rstrip() + "\n" for s in kept), section])
    atomic_write_bytes(path, _keep_notes(path, text).encode())
    print(f"wrote {path}")


def _usable(r, minutes: bool = False) -> str:
    """A run's time to usable: 'ITERATION of ITERS' or 'never (of ITERS)', the checkpoint
    whose weights paint where it is not the last, and with minutes the run's training
    minutes after it."""
    u = r["usable_at"]
    text = f"{u} of {r['iters']}" if u is not None else f"never (of {r['iters']})"
    painted = (r.get("painted") or {}).get("iteration")
    if painted not in (None, r["iters"]):   # keep_within kept an earlier checkpoint's weights
        text += f" (paints {painted}'s weights)"
    return text + (f", {r['train_seconds'] / 60:.0f} min" if minutes else "")


def _ablation_row(name, label, r):
    return _row(name, label, r["metrics"], r["baseline"], _usable(r, minutes=True), r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["table", "ablation", "ab"])
    ap.add_argument("--only", help="comma-separated photo names")
    ap.add_argument("--no-texnet", action="store_true")
    ap.add_argument("--iters", type=int, help="ab: iterations per training (default 200); "
                    "table: instead of the preset's")
    ap.add_argument("--preset", choices=["fast", "full"], default="fast",
                    help="table: the preset texgen trains with (full: meant for a GPU)")
    ap.add_argument("--method", choices=["psgan", "texnet"],
                    help="what trains (ab: default psgan; table: default both, the other "
                    "method's row kept from the ledger)")
    ap.add_argument("--variant", action="append", default=[],
                    help="ab: LABEL:field=value,... (training config fields, m.field: the model "
                    "config's; 'base:' for none)")
    ap.add_argument("--minutes", type=float, help="ablation: budget per training (default 15); "
                    "table: instead of --iters, as many iterations as this allows")
    ap.add_argument("--snapshots", type=int, default=10,
                    help="checkpoints scored per training for time-to-usable")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and painting")
    ap.add_argument("--photos", help="folder of the photos (default ../shared/data/textures)")
    ap.add_argument("--work", help="folder for models and per-run results (default benchmarks/models/quality)")
    ap.add_argument("--out", help="folder for the results files and contact sheets (default benchmarks/out)")
    args = ap.parse_args()
    global MODELS, OUT, DATA
    MODELS = Path(args.work) if args.work else MODELS
    OUT = Path(args.out) if args.out else OUT
    DATA = Path(args.photos) if args.photos else DATA
    if args.iters and args.minutes and args.what == "table":
        ap.error("table: --iters or --minutes, not both")
    if args.what == "ablation":
        args.minutes = args.minutes or 15.0
    if not DATA.is_dir():
        print(f"{DATA} is absent: nothing to benchmark")
        return
    torch.set_num_threads(args.threads)
    found = photos()
    cfg = EvalConfig()
    vgg = VGG19(last="relu4_1")
    if args.what == "ab" and not (args.only and args.variant):
        ap.error("ab needs --only PHOTOS and at least one --variant")
    if args.what == "ab":
        rescaled(found, args.only.split(","))
        args.iters = args.iters or 200
        args.method = args.method or "psgan"
    {"table": table, "ablation": ablation, "ab": ab}[args.what](args, found, cfg, vgg)


if __name__ == "__main__":
    main()
