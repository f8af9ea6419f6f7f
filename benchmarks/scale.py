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

UDIM sets and texture sets per minute with 1 and 2 Ray workers belong in the second table of
the results file (issue 14 part 4): RAY_SECTION below is where that half goes.
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

RAY_SECTION = """## UDIM sets and texture sets per minute on Ray

Issue 14 part 4 (the Ray cluster) adds here: UDIM sets per minute and texture sets per minute
with 1 and 2 Ray workers, measured side by side in one run.
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

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(head + rows) + "\n\n" + RAY_SECTION)

    sizes = [*args.sizes, *args.odd]
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


if __name__ == "__main__":
    main()
