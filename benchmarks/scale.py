"""Painting at scale: peak memory and speed against canvas size, up to 65536 x 65536 px.

    python benchmarks/scale.py --model psgan=texgen/builtin/bricks/model.onnx \\
        --model texnet=models/conc.onnx --sizes 1024 4096 16384 65536 --odd 1009x777 65000
    -> benchmarks/out/scale.md

Each (model, size) is one `texgen generate --model M --size S --device cpu --out X.png` in a
fresh process through the real console script, as a user runs it: the texture is painted band
by band and streamed to a PNG (runtime/canvas.paint_to_file), so its peak resident memory
(os.wait4 of that process: everything, onnxruntime's arena included) should not grow with the
canvas. Then `texgen eval --image X.png` reads it back (bounded: imageio.read_image_bands past
64 Mpx) and its peak memory and seam score are recorded too; the PNG (about 10-13 GB at
65536 px) is deleted before the next size. Sizes given with --odd are not whole 32 px cells:
they are resampled band by band (runtime/resample.py). Mpx/s counts the whole command (start,
noise, painting, PNG encoding) over the texture's pixels.

Run it on one core, as the results file says (taskset -c 1, OMP_NUM_THREADS=1, --threads 1),
when nothing else runs there: the 65536 px rows take tens of minutes to hours each. The file is
rewritten after every row, so an interrupted run keeps what it measured.

The second section (--section ray, or both) measures UDIM sets and texture sets per minute
through the real console script: the plain run (this process; export-set also --jobs 2) beside
--ray on a local cluster of 1 and of 2 one-CPU nodes on 127.0.0.1 (tests/ray_local.py), started
before the timed commands and stopped after them. Every --ray result is compared byte for byte
with the plain run's. From those numbers it writes what a 100-node cluster would do with 10,000
sets (ray_forecast). --section ray keeps the size table already in the results file:

    python benchmarks/scale.py --section ray --model psgan=texgen/builtin/bricks/model.onnx \
        --ray-udim 2x2 --ray-tile 1024 --ray-size 1024 --ray-sets 4
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "scale.md"
TEXGEN = [sys.executable, "-c", "from texgen.cli import main; main()"]

RAY_HEADING = "## UDIM sets and texture sets per minute on Ray"
RAY_SECTION = f"""{RAY_HEADING}

Not measured yet: `python benchmarks/scale.py --section ray --model psgan=MODEL.onnx`.
"""


def run_reaped(cmd: list[str], env: dict) -> dict:
    """Run cmd and reap it with os.wait4, which gives that child's own peak RSS (ru_maxrss,
    KiB on Linux); stdout and stderr go to files so the pipe never blocks a big run."""
    import tempfile
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        pid = os.posix_spawnp(cmd[0], cmd, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    last = errors.replace("\r", "\n").strip().splitlines()[-1:] or [""]
    return {"rc": os.waitstatus_to_exitcode(status), "seconds": seconds,
            "peak_mib": usage.ru_maxrss / 1024, "out": text, "err": last[0]}


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=PATH",
                    help="a model to paint, e.g. psgan=texgen/builtin/bricks/model.onnx")
    ap.add_argument("--sizes", nargs="+", default=["1024", "4096", "16384", "65536"])
    ap.add_argument("--odd", nargs="*", default=["1009x777"],
                    help="sizes that are not whole cells (resampled)")
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/texgen-scale"),
                    help="where the PNGs go (deleted after each row)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime threads (--threads)")
    ap.add_argument("--no-eval", action="store_true", help="skip texgen eval --image")
    ap.add_argument("--skip", action="append", default=[], metavar="LABEL:SIZE",
                    help="leave out one row, e.g. texnet:65000")
    ap.add_argument("--note", default="", help="a sentence for the results file (how the "
                                               "models were made)")
    ap.add_argument("--commit", help="the texgen commit measured (default: this checkout's "
                                     "HEAD; give it when running from a `git archive` copy)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--section", choices=["sizes", "ray", "both"], default="both",
                    help="what to measure: the size table, the Ray section (the first --model; "
                         "the other section is kept from the results file) or both")
    ap.add_argument("--ray-udim", default="2x2", help="the UDIM set painted per run (COLSxROWS)")
    ap.add_argument("--ray-tile", type=int, default=1024, help="its tile size in px")
    ap.add_argument("--ray-size", type=int, default=1024, help="texture-set size in px")
    ap.add_argument("--ray-sets", type=int, default=4, help="sets of each kind per row")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    args.tmp.mkdir(parents=True, exist_ok=True)
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cores = list(range(os.cpu_count() or 1))
    commit = args.commit or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short",
                                            "HEAD"], capture_output=True, text=True).stdout.strip()
    head = [
        "# Painting at scale: peak memory and speed against canvas size",
        "",
        f"`{' '.join(['python', 'benchmarks/scale.py', *sys.argv[1:]])}` (texgen {commit}, "
        f"{datetime.date.today()}), under `taskset -c {','.join(map(str, cores))}`: "
        f"**{len(cores)} CPU core{'s' if len(cores) > 1 else ''}**, onnxruntime "
        f"`--threads {args.threads}`, OMP_NUM_THREADS={args.threads}; {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}. Every row is one `texgen generate --device cpu` "
        f"process streaming a PNG (8-bit RGB), then one `texgen eval --image` process reading it "
        f"back; peak RSS is that process's own (os.wait4), Mpx/s the texture's pixels over the "
        f"whole command's wall time. Models: "
        + ", ".join(f"{k} = `{v}`" for k, v in models.items()) + ". " + args.note,
        "",
        "| model | size | whole cells | peak RSS generate | seconds | Mpx/s | PNG size | peak RSS eval --image | eval seconds | seam score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows: list[str] = []
    old = args.out.read_text() if args.out.exists() else ""
    kept_sizes, _, kept_ray = old.partition(RAY_HEADING)
    ray_text = [RAY_HEADING + kept_ray if kept_ray else RAY_SECTION]

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        sizes_text = ("\n".join(head + rows) + "\n\n" if args.section != "ray"
                      else kept_sizes or "# Painting at scale\n\n")
        args.out.write_text(sizes_text + ray_text[0].rstrip("\n") + "\n")

    if args.section != "sizes":
        label, path = next(iter(models.items()))
        ray_text[0] = ray_section(args, label, path, env, commit)
        write()
    sizes = [*args.sizes, *args.odd] if args.section != "ray" else []
    for label, path in models.items():
        for text in sizes:
            if f"{label}:{text}" in args.skip:
                continue
            w, h = parse_size(text)
            whole = w % 32 == 0 and h % 32 == 0
            png = args.tmp / f"{label}_{w}x{h}.png"
            print(f"{label} {w}x{h} ...", flush=True)
            g = run_reaped([*TEXGEN, "generate", "--model", path, "--size", f"{w}x{h}",
                            "--device", "cpu", "--threads", str(args.threads), "--seed", "1",
                            "--out", str(png)], env)
            if g["rc"] != 0:
                rows.append(f"| {label} | {w}x{h} | {'yes' if whole else 'no'} | failed: "
                            f"{g['err'][:120]} | | | | | | |")
                write()
                continue
            mb = png.stat().st_size / 2 ** 20
            e = {"peak_mib": float("nan"), "seconds": float("nan")}
            seam = "—"
            if not args.no_eval:
                e = run_reaped([*TEXGEN, "eval", "--image", str(png)], env)
                try:
                    seam = f"{json.loads(e['out'])['seam_score']:.3f}"
                except (ValueError, KeyError):
                    seam = f"failed: {e['err'][:80]}"
            png.unlink()
            rows.append(f"| {label} | {w}x{h} | {'yes' if whole else 'no (resampled)'} | "
                        f"{g['peak_mib']:.0f} MiB | {g['seconds']:.0f} | "
                        f"{w * h / 1e6 / g['seconds']:.2f} | {mb:.0f} MiB | "
                        f"{e['peak_mib']:.0f} MiB | {e['seconds']:.0f} | {seam} |")
            print(rows[-1], flush=True)
            write()
    shutil.rmtree(args.tmp, ignore_errors=True)
    write()
    print(f"wrote {args.out}")


# --------------------------------------------------------------------------- Ray

def ray_section(args, label: str, model: str, env: dict, commit: str) -> str:
    """The Ray section: UDIM sets and texture sets per minute, plain and on local clusters of
    1 and 2 nodes, the bytes checked against the plain run, then ray_forecast."""
    sys.path.insert(0, str(ROOT / "tests"))
    from ray_local import PATCH, LocalCluster        # the clusters tests/test_cluster.py uses
    import importlib.util
    if importlib.util.find_spec("ray") is None:
        print("Ray is not installed (pip install -e '.[cluster]'): no Ray section", flush=True)
        return RAY_SECTION
    n, tmp = args.ray_sets, args.tmp / "ray"
    udim = ["--udim", args.ray_udim, "--tile-size", str(args.ray_tile), "--device", "cpu"]
    sets = ["--size", str(args.ray_size), "--format", "png16", "--device", "cpu"]
    # a --ray driver keeps Ray's addresses on loopback, as the clusters do (tests/ray_local.py)
    on_ray = [sys.executable, "-c", f"import sys; {PATCH}; from texgen.cli import main; main()"]

    def driver(extra: list[str]) -> list[str]:
        return on_ray if "--ray" in extra else TEXGEN

    def udim_sets(where: str, extra: list[str]) -> dict:
        out = tmp / where / "udim"
        t = [run_reaped([*driver(extra), "generate", "--model", model, *udim, "--seed", str(s),
                         "--out", str(out / f"s{s}" / "w.png"), *extra], env)
             for s in range(1, n + 1)]
        return _timed(t, out)

    def texture_sets(where: str, extra: list[str]) -> dict:
        out = tmp / where / "sets"
        t = [run_reaped([*driver(extra), "export-set", "--model", model, "--seeds", f"1-{n}", *sets,
                         "--out", str(out), *extra], env)]
        return _timed(t, out)

    shutil.rmtree(tmp, ignore_errors=True)
    # row name -> (folder under tmp, UDIM sets, texture sets)
    results = {"plain": ("plain", udim_sets("plain", []), texture_sets("plain", [])),
               "--jobs 2": ("jobs2", None, texture_sets("jobs2", ["--jobs", "2"]))}
    for nodes in (1, 2):
        print(f"ray, {nodes} node(s) ...", flush=True)
        with LocalCluster(cpus=(1,) * nodes) as c:
            on, where = ["--ray", c.address], f"ray{nodes}"
            results[f"--ray, {nodes} worker{'s' * (nodes > 1)}"] = (
                where, udim_sets(where, on), texture_sets(where, on))
    plain = {k: _tree(tmp / "plain" / k) for k in ("udim", "sets")}
    rows = ["| run | UDIM sets / min | s / UDIM set | texture sets / min | s / texture set | "
            "bytes as the plain run |", "|---|---|---|---|---|---|"]

    def cell(r: dict | None) -> str:
        if r is None:
            return "— | —"
        return f"{r['per_min']:.2f} | {r['seconds'] / n:.1f}" if r["ok"] else \
            f"failed: {r['err'][:60]} | "
    for name, (where, u, t) in results.items():
        same = all(_tree(tmp / where / k) == plain[k] for k in ("udim", "sets")
                   if (tmp / where / k).exists())
        rows.append(f"| {name} | {cell(u)} | {cell(t)} | {'yes' if same else '**no**'} |")
    shutil.rmtree(tmp, ignore_errors=True)
    text = [RAY_HEADING, "",
            f"`python benchmarks/scale.py {' '.join(sys.argv[1:])}` (texgen {commit}, "
            f"{datetime.date.today()}): {n} UDIM sets of {args.ray_udim} tiles of {args.ray_tile} "
            f"px ({label}, 8-bit PNG, one `texgen generate --udim` per set) and {n} texture sets "
            f"of {args.ray_size} px (five maps, 16-bit PNG, one `texgen export-set`), through "
            f"the console script. Plain: one process; `--ray`: a local cluster of one-CPU nodes "
            f"on 127.0.0.1 (head + worker nodes, tests/ray_local.py) started before the timed "
            f"commands, one thread per task. Times include each command's start and its "
            f"connection to the cluster.", "", *rows, "",
            ray_forecast(results, n, args), ""]
    return "\n".join(text)


def _timed(runs: list[dict], out: Path) -> dict:
    seconds = sum(r["seconds"] for r in runs)
    ok = all(r["rc"] == 0 for r in runs)
    files = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    return {"ok": ok, "seconds": seconds, "per_min": 60 * _count(out) / seconds if seconds else 0.0,
            "err": next((r["err"] for r in runs if r["rc"]), ""),
            "bytes": sum(p.stat().st_size for p in files if not p.name.endswith("jobs.json")),
            "manifest": sum(p.stat().st_size for p in files if p.name.endswith("jobs.json")),
            "jobs": _jobs(files)}


def _count(out: Path) -> int:
    """Sets under out: UDIM sets are folders s1, s2, ...; texture sets hold a manifest.json."""
    if not out.exists():
        return 0
    udim = [p for p in out.iterdir() if p.is_dir() and p.name.startswith("s") and p.name[1:].isdigit()]
    return len(udim) or len(list(out.glob("*/manifest.json")))


def _jobs(files: list[Path]) -> int:
    return sum(len(json.loads(p.read_text())["jobs"]) for p in files if p.name.endswith("jobs.json"))


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def ray_forecast(results: dict, n: int, args) -> str:
    """What 100 nodes would do with 10,000 sets, from the rows measured: per-worker rate, the
    second worker's gain, bytes and manifest bytes per set."""
    plain_t = results["plain"][2]
    one = results["--ray, 1 worker"][1:]
    two = results["--ray, 2 workers"][1:]
    if not all(r and r["ok"] for r in (*one, *two, plain_t)):
        return "(No forecast: a row above failed.)"
    from texgen.cluster import MANIFEST_EVERY_S
    t1, t2 = one[1], two[1]
    per_set = t1["seconds"] / n                       # one worker, texture sets
    overhead = t1["seconds"] - plain_t["seconds"]     # what Ray adds to the command
    gain = t2["per_min"] / t1["per_min"]              # the second worker's speed-up
    mb_set = t1["bytes"] / n / 2 ** 20
    manifest_b = t1["manifest"] / max(t1["jobs"], 1)  # jobs.json bytes per job
    u_per_set = one[0]["seconds"] / n
    u_mb = one[0]["bytes"] / n / 2 ** 20
    workers = 100 * 16                                # 100 nodes of 16 cores, a task per core
    eff = min(gain / 2, 1.0)                          # the second worker's share of perfect
    ideal = 10_000 * per_set / workers / 60
    write_mb_s = workers * mb_set / per_set           # all workers writing at once
    grow = (4096 / args.ray_size) ** 2                # the same sets at 4096 px
    manifest_mb = 10_000 * manifest_b / 2 ** 20
    tasks_s = workers / per_set                       # tasks the scheduler must start per second
    per_worker = mb_set / per_set                     # MiB/s one worker writes
    storage = ("more than a shared NFS volume's 1-2 GiB/s: **storage bandwidth** is the "
               "bottleneck" if write_mb_s > 1024 else
               f"within a shared volume's 1-2 GiB/s; a bigger set writes more bytes but takes "
               f"about as much longer to paint, so one worker writes about {per_worker:.2f} "
               f"MiB/s at any size, and **storage bandwidth** becomes the limit at about "
               f"{1024 / max(per_worker, 1e-9):,.0f} workers per GiB/s of storage")
    return (
        f"**What 100 nodes would do with 10,000 sets**, from the rows above. One Ray worker "
        f"paints a {args.ray_size} px texture set in {per_set:.2f} s and writes {mb_set:.2f} "
        f"MiB (the command of {n} sets took {overhead:+.1f} s against the plain run: "
        f"connecting to the cluster, handing tasks over, a model load per worker process); "
        f"a second worker gave {gain:.2f}x (2.0 would be perfect; this machine has 2 cores "
        f"shared by the driver, Ray's own processes and anything else running). A UDIM set of "
        f"{args.ray_udim} x {args.ray_tile} px took {u_per_set:.2f} s on one worker "
        f"({u_mb:.2f} MiB). Sets are independent, so 100 nodes of 16 cores (1,600 one-CPU "
        f"tasks at once) would paint 10,000 such texture sets in about {ideal:.1f} minutes at "
        f"one worker's rate, or {ideal / max(eff, 1e-9):.1f} minutes at the efficiency "
        f"measured here for the second worker. The bottleneck moves off the CPUs: "
        f"1,600 workers write {write_mb_s:,.0f} MiB/s together, {storage}; each worker also "
        f"reads its files back once to hash them for the manifest. The **manifest** "
        f"(jobs.json, {manifest_b:,.0f} bytes per set) reaches {manifest_mb:.1f} MiB at "
        f"10,000 sets; the driver rewrites it at most every {MANIFEST_EVERY_S:.0f} s "
        f"(texgen/cluster.MANIFEST_EVERY_S), {manifest_mb / MANIFEST_EVERY_S:.1f} MiB/s at "
        f"worst, so writing it is not the limit, but a rerun re-hashes every finished file "
        f"before skipping it: a full read of the library ({10_000 * mb_set / 1024:,.1f} GiB "
        f"here, {10_000 * mb_set * grow / 1024:,.0f} GiB at 4096 px), as slow as the storage. "
        f"**Scheduling**: one task per set asks the scheduler for {tasks_s:,.0f} task starts "
        f"per second at full speed; Ray's scheduler is documented in the thousands per "
        f"second (not measured here), so at {per_set:.2f} s per set it "
        f"{'is a limit: group several sets per task' if tasks_s > 1000 else 'is not the limit'}"
        f"; with bigger sets each task runs longer and it matters less. Model loading is paid "
        f"once per worker process (painters.shared_painter), not per set.")


if __name__ == "__main__":
    main()
