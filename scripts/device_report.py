#!/usr/bin/env python3
"""Device figures for ``scripts/device_check.sh``: forward throughput, FLOP use, CUDA OOM halving.

Two modes:

* measure (default): one forward pass of the bundled ``building-mtl`` model is counted with
  :class:`torch.utils.flop_counter.FlopCounterMode`; a batch-size sweep times the forward (same
  network as the engine: batch norms folded, channels_last, precision ``auto``) and reports MPx/s,
  achieved TFLOP/s and, on CUDA, the fraction of ``PEAK_BF16_TFLOPS`` (env, default 989, H100/H200
  SXM dense bf16); on CUDA the engine's out-of-memory halving is exercised. On a CPU a reduced
  version runs (batch 1, 2, 4 on 256 px, no OOM part, GFLOP/s instead of a fraction).
* ``--assemble STEPS.jsonl``: merges the step records the shell script wrote (and the JSON files
  they point at) into one ``--out`` JSON plus a human-readable ``--md`` file.

Usage: ``python scripts/device_report.py --out report.json [--quick] [--device auto]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "building-mtl"


def peak_tflops() -> float:
    """Dense bf16 peak of the GPU in TFLOP/s, from ``$PEAK_BF16_TFLOPS`` (default 989, H100/H200 SXM).

    Returns:
        The peak in TFLOP/s.
    """
    return float(os.environ.get("PEAK_BF16_TFLOPS", "989"))


def cpu_info() -> dict[str, Any]:
    """CPU model and bf16 capability flags from ``lscpu``.

    Returns:
        ``{"model", "cores", "avx512_bf16", "amx_bf16"}``.
    """
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    model, flags = platform.processor() or platform.machine(), ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
        elif line.startswith("Flags:"):
            flags = line.split(":", 1)[1]
    fl = set(flags.split())
    return {"model": model, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in fl, "amx_bf16": "amx_bf16" in fl}


def device_info(device) -> dict[str, Any]:
    """Torch version and device name.

    Args:
        device: The :class:`torch.device` in use.

    Returns:
        ``{"torch", "device", "device_name", "cuda_version", "gpu_memory_gib"}``.
    """
    import torch

    info = {
        "torch": torch.__version__,
        "device": str(device),
        "cuda_version": torch.version.cuda,
        "device_name": cpu_info()["model"],
        "gpu_memory_gib": None,
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(device_name=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1))
    return info


def count_flops(net, shape: tuple[int, ...], device) -> float:
    """FLOPs of one forward pass of ``net`` on a zero input of ``shape``.

    Args:
        net: The :class:`torch.nn.Module`.
        shape: Input shape ``(B, C, H, W)``.
        device: Device of ``net``.

    Returns:
        Total FLOPs counted by :class:`torch.utils.flop_counter.FlopCounterMode`.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(shape, device=device)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        net(x)
    return float(fc.get_total_flops())


def _precision(device):
    try:
        from rsviz.inference.engine import resolve_precision
    except ImportError:  # moved
        from rsviz.inference.precision import resolve_precision
    return resolve_precision("auto", device)


def time_forward(net, batch: int, size: int, device, amp, repeats: int) -> float:
    """Median wall seconds of one forward pass on a random ``(batch, 3, size, size)`` input.

    Args:
        net: The inference network (folded, channels_last).
        batch: Batch size.
        size: Tile side in pixels.
        device: Device of ``net``.
        amp: Autocast dtype or None for fp32.
        repeats: Timed passes (after one warm-up pass).

    Returns:
        Median seconds per pass.
    """
    import torch

    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    cuda = device.type == "cuda"

    def fwd():
        if amp is None:
            return net(x)
        with torch.autocast(device.type, dtype=amp):
            return net(x)

    times = []
    with torch.inference_mode():
        fwd()
        if cuda:
            torch.cuda.synchronize()
        for _ in range(repeats):
            t = time.perf_counter()
            fwd()
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def batch_sweep(lm, size: int, batches: list[int] | None, repeats: int, max_batch: int = 1024) -> dict[str, Any]:
    """Forward throughput per batch size; doubles until MPx/s rises by <= 3 % or CUDA runs out of memory.

    Args:
        lm: The :class:`rsviz.models.api.LoadedModel`.
        size: Tile side in pixels.
        batches: Fixed batch sizes (CPU); None: 1, 2, 4, ... with the stopping rule.
        repeats: Timed passes per batch size.
        max_batch: Largest batch tried by the doubling sweep.

    Returns:
        ``{"tile", "precision", "gflop_per_tile", "rows": [...], "best": row, "stopped_by"}``.
    """
    import torch

    from rsviz.models.fusion import inference_net

    dev = lm.device
    amp = _precision(dev)
    fl = count_flops(lm.net, (1, lm.card.in_channels, size, size), dev)
    net = inference_net(lm.net, channels_last=True)
    rows, stopped, b = [], "list", 1
    todo = list(batches) if batches else None
    while True:
        if todo is not None:
            if not todo:
                break
            b = todo.pop(0)
        try:
            s = time_forward(net, b, size, dev, amp, repeats)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            rows.append({"batch": b, "oom": True})
            stopped = "cuda_oom"
            break
        tf = fl * b / s / 1e12
        row = {
            "batch": b,
            "seconds": s,
            "mpx_per_s": b * size * size / 1e6 / s,
            "achieved_tflops": tf,
            "achieved_gflops": tf * 1e3,
        }
        if dev.type == "cuda":
            row["fraction_of_peak_bf16"] = tf / peak_tflops()
        rows.append(row)
        if todo is None:
            ok = [r for r in rows if not r.get("oom")]
            if len(ok) >= 2 and ok[-1]["mpx_per_s"] <= 1.03 * ok[-2]["mpx_per_s"]:
                stopped = "gain<=3%"
                break
            if b >= max_batch:
                stopped = "max_batch"
                break
            b *= 2
    ok = [r for r in rows if not r.get("oom")]
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "tile": size,
        "precision": str(amp or torch.float32).replace("torch.", ""),
        "gflop_per_tile": fl / 1e9,
        "rows": rows,
        "best": max(ok, key=lambda r: r["mpx_per_s"]) if ok else None,
        "stopped_by": stopped,
    }


def oom_halving(lm, side: int = 8192, batch: int = 4096) -> dict[str, Any]:
    """Exercise the engine's CUDA out-of-memory halving with ``predict(..., batch_size=batch)``.

    A batch per forward is bounded by the windows of one panel (``PANEL_COLS`` pixels), which
    rarely fills a large GPU, so when the unconstrained run raises no OOM the run is repeated with
    the caching allocator capped (``torch.cuda.set_per_process_memory_fraction``) between the peak of
    a batch-1 run and that of the unconstrained one.

    Args:
        lm: A CUDA :class:`rsviz.models.api.LoadedModel`.
        side: Side of the random ``(3, side, side)`` uint8 array.
        batch: Requested batch size.

    Returns:
        Per attempt: warnings recorded, peak memory, seconds, error (if any).
    """
    import numpy as np
    import torch

    from rsviz.inference import predict

    arr = np.random.default_rng(0).integers(0, 256, (3, side, side), dtype=np.uint8)
    total = torch.cuda.get_device_properties(lm.device).total_memory

    def attempt(bs: int) -> dict[str, Any]:
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                p = predict(lm, arr, batch_size=bs)
                err = None
                del p
            except Exception as e:  # noqa: BLE001 - recorded, not raised
                err = f"{type(e).__name__}: {str(e)[:300]}"
        msgs = [str(x.message) for x in w if "batch size halved" in str(x.message)]
        return {
            "batch_size": bs,
            "seconds": time.perf_counter() - t,
            "error": err,
            "halved_warnings": msgs,
            "peak_gib": (torch.cuda.max_memory_allocated() - base) / 2**30,
            "base_gib": base / 2**30,
        }

    res: dict[str, Any] = {"array": [3, side, side], "free_run": attempt(batch)}
    if not res["free_run"]["halved_warnings"]:
        one = attempt(1)
        res["batch1_run"] = one
        hi, lo = res["free_run"]["peak_gib"], one["peak_gib"]
        cap = one["base_gib"] + lo + 0.3 * max(hi - lo, 0.0) + 0.25  # GiB allowed to the allocator
        frac = min(1.0, cap * 2**30 / total)
        res["cap_gib"], res["cap_fraction"] = cap, frac
        torch.cuda.set_per_process_memory_fraction(frac, lm.device)
        try:
            res["capped_run"] = attempt(batch)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, lm.device)
            torch.cuda.empty_cache()
    runs = [r for k, r in res.items() if k in ("free_run", "capped_run")]
    res["halving_seen"] = any(r["halved_warnings"] for r in runs)
    res["warnings"] = [m for r in runs for m in r["halved_warnings"]]
    return res


def measure(device: str, quick: bool) -> dict[str, Any]:
    """All figures of this module for one device.

    Args:
        device: ``auto``, ``cuda`` or ``cpu``.
        quick: Tiny sizes (smoke run).

    Returns:
        The report dictionary.
    """
    from rsviz.models.api import load_model, resolve_device

    dev = resolve_device(device)
    lm = load_model(MODEL, dev)
    rep: dict[str, Any] = {"model": MODEL, **device_info(dev), "cpu": cpu_info(), "quick": quick}
    cuda = dev.type == "cuda"
    if cuda:
        rep["peak_bf16_tflops"] = peak_tflops()
        rep["sweep"] = batch_sweep(lm, 512, [1, 2] if quick else None, 3 if quick else 10)
        rep["oom"] = oom_halving(lm, 2048 if quick else 8192)
    else:
        rep["sweep"] = batch_sweep(lm, 128 if quick else 256, [1, 2] if quick else [1, 2, 4], 1 if quick else 3)
        rep["oom"] = {"skipped": "no CUDA"}
    best = rep["sweep"]["best"] or {}
    rep["summary"] = {
        "best_batch": best.get("batch"),
        "best_mpx_per_s": best.get("mpx_per_s"),
        "achieved_gflops": best.get("achieved_gflops"),
        "fraction_of_peak_bf16": best.get("fraction_of_peak_bf16"),
        "oom_halving_seen": rep["oom"].get("halving_seen"),
    }
    return rep


def _bench_json(log: Path) -> dict | None:
    """The JSON object ``benchmark_inference.py`` prints last (a line ``{`` to the end)."""
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return None
    starts = [i for i, line in enumerate(lines) if line == "{"]
    for i in reversed(starts):
        try:
            return json.loads("\n".join(lines[i:]))
        except ValueError:
            continue
    return None


def assemble(steps_file: Path, out: Path, md: Path) -> int:
    """Merge the shell script's step records into one JSON file and a Markdown summary.

    Args:
        steps_file: JSON lines, one per step: ``name, rc, wall_s, log`` and optional ``json`` (a file).
        out: JSON file to write.
        md: Markdown file to write.

    Returns:
        Number of failed steps.
    """
    steps, meta = [], {}
    for line in steps_file.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("name") == "_meta":
            meta = rec
            continue
        if rec.get("json"):
            try:
                rec["result"] = json.loads(Path(rec["json"]).read_text())
            except (OSError, ValueError) as e:
                rec["result"] = {"error": f"unreadable: {e}"}
        if rec["name"] == "benchmark":
            rec["result"] = _bench_json(Path(rec["log"]))
        try:
            rec["log_tail"] = Path(rec["log"]).read_text()[-1500:]
        except OSError:
            rec["log_tail"] = None
        steps.append(rec)
    failed = [s["name"] for s in steps if s["rc"] != 0]
    doc = {
        "meta": {k: v for k, v in meta.items() if k != "name"},
        "failed_steps": failed,
        "steps": {s["name"]: s for s in steps},
    }
    out.write_text(json.dumps(doc, indent=1, default=str))
    lines = [
        f"# Device check ({meta.get('mode', '?')})",
        "",
        f"device `{meta.get('device', '?')}` {meta.get('device_name', '')}; torch {meta.get('torch', '?')}; "
        f"CPU {meta.get('cpu_model', '?')} (avx512_bf16 {meta.get('avx512_bf16')}, amx_bf16 {meta.get('amx_bf16')})",
        "",
        "| step | rc | wall s |",
        "|---|---|---|",
    ]
    lines += [f"| {s['name']} | {s['rc']} | {s['wall_s']:.1f} |" for s in steps]
    rep = doc["steps"].get("report", {}).get("result") or {}
    if rep.get("sweep"):
        lines += [
            "",
            f"Forward sweep, tile {rep['sweep']['tile']} px, {rep['sweep']['precision']}, "
            f"{rep['sweep']['gflop_per_tile']:.2f} GFLOP/tile (stopped by {rep['sweep']['stopped_by']}):",
            "",
            "| batch | s | MPx/s | GFLOP/s | fraction of bf16 peak |",
            "|---|---|---|---|---|",
        ]
        for r in rep["sweep"]["rows"]:
            if r.get("oom"):
                lines.append(f"| {r['batch']} | OOM | | | |")
            else:
                fr = r.get("fraction_of_peak_bf16")
                lines.append(
                    f"| {r['batch']} | {r['seconds']:.4f} | {r['mpx_per_s']:.2f} | {r['achieved_gflops']:.1f} | "
                    f"{'' if fr is None else f'{fr:.3f}'} |"
                )
        lines += [
            "",
            f"OOM halving: {rep.get('oom', {}).get('halving_seen', rep.get('oom', {}).get('skipped'))} "
            f"{rep.get('oom', {}).get('warnings', '')}",
        ]
    tr = doc["steps"].get("train", {}).get("result") or {}
    if tr:
        lines += [
            "",
            f"Training: {tr.get('steps')} steps, {tr.get('s_per_step', float('nan')):.3f} s/step (wall incl. start-up)",
        ]
    b = doc["steps"].get("benchmark", {}).get("result") or {}
    if b.get("rows"):
        lines += ["", "Benchmark rows (MPx/s): " + ", ".join(f"{k} {v['mpx_per_s']:.3f}" for k, v in b["rows"].items())]
    lines += ["", f"Failed steps: {', '.join(failed) or 'none'}", ""]
    md.write_text("\n".join(lines))
    return len(failed)


def main(argv: list[str] | None = None) -> int:
    """Command line: measure (``--out``) or ``--assemble`` the shell script's records.

    Args:
        argv: Arguments (``sys.argv[1:]`` by default).

    Returns:
        Exit status: 0, or the number of failed steps with ``--assemble``.
    """
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    ap.add_argument("--assemble", type=Path, help="steps JSON-lines file of device_check.sh")
    ap.add_argument("--md", type=Path, help="Markdown summary (with --assemble)")
    a = ap.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if a.assemble:
        return min(assemble(a.assemble, a.out, a.md or a.out.with_suffix(".md")), 1)
    rep = measure(a.device, a.quick)
    a.out.write_text(json.dumps(rep, indent=1))
    print(json.dumps(rep["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
