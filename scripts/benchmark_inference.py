#!/usr/bin/env python3
"""Benchmark of the tiled inference engine; writes the table to docs/benchmarks.md.

Rows (same model, same tiles, same overlap, so compute is counted the same way; MPx/s is
raster megapixels per second):

(a) bare model forward on pre-loaded, pre-normalised batches, same network (batch norms folded into
    the convolutions, ``rsviz.models.fusion``), layout (channels_last) and precision (``auto``: bf16
    autocast on GPUs and on CPUs with native bf16) as the engine -- the ceiling;
(b) the engine end to end, GeoTIFF on disk -> outputs in memory, and -> COG on disk;
(c) a naive per-tile loop as common tools do it: the model as loaded (batch norms unfolded), batch 1,
    fp32, default (NCHW) memory layout,
    each tile read separately, blending weights rebuilt per tile in NumPy on the CPU,
    accumulation in NumPy.

Plus the peak RSS of streaming a 16384 x 16384 GeoTIFF to a COG on the CPU (separate
process, ``resource.getrusage``), and with CUDA the GPU rows and the fraction of the
bf16 FLOP limit (FLOPs counted with ``torch.utils.flop_counter``).

Usage: ``python scripts/benchmark_inference.py [--size 2048] [--big 16384] [--big-rows N] [--repeats 3]``
(``--big-rows``: stream a ``N x 16384`` strip instead of the full square, for CPUs where the full
run takes too long; peak memory is set by the width -- strip and panel buffers -- plus the seam
carry of ``rows x 128 x channels`` float32, which the table states.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsviz.inference import predict, window_starts  # noqa: E402
from rsviz.inference.precision import resolve_precision  # noqa: E402
from rsviz.models.api import LoadedModel, load_model, resolve_device  # noqa: E402
from rsviz.models.fusion import inference_net  # noqa: E402

MODEL = "building-mtl"


def make_raster(path: Path, size: int, seed: int = 0, height: int | None = None) -> None:
    """Smooth synthetic RGB uint8 GeoTIFF, ``height`` (default ``size``) x ``size``, tiled 512, deflate,
    written in strips (bounded memory)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (3, 64, 64)).astype(np.float32)
    rows = height or size
    prof = {
        "driver": "GTiff",
        "height": rows,
        "width": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32645",
        "transform": rasterio.transform.from_origin(330000, 3060000, 0.13, 0.13),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **prof) as dst:
        for y in range(0, rows, 512):
            h = min(512, rows - y)
            yy = (np.arange(y, y + h) // 37) % 64
            xx = (np.arange(size) // 41) % 64
            strip = base[:, yy][:, :, xx] + rng.normal(0, 8, (3, h, size))
            dst.write(np.clip(strip, 0, 255).astype(np.uint8), window=rasterio.windows.Window(0, y, size, h))


def tiles_of(size: int, tile: int, overlap: float) -> list[tuple[int, int]]:
    s = window_starts(size, tile, overlap)
    return [(y, x) for y in s for x in s]


def bare_forward(lm: LoadedModel, path: Path, tile: int, overlap: float, batch: int) -> tuple[float, float]:
    with rasterio.open(path) as ds:
        img = ds.read()
    card = lm.card
    mean = torch.tensor(card.input.mean).view(1, -1, 1, 1)
    std = torch.tensor(card.input.std).view(1, -1, 1, 1)
    tl = [
        torch.from_numpy(img[:, y : y + tile, x : x + tile].astype(np.float32))
        for y, x in tiles_of(img.shape[1], tile, overlap)
    ]
    batches = [((torch.stack(tl[i : i + batch]) / 255.0 - mean) / std).to(lm.device) for i in range(0, len(tl), batch)]
    cuda = lm.device.type == "cuda"
    # same network as the engine: batch norms folded into the convolutions, channels_last layout
    net = inference_net(lm.net, channels_last=True)
    batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    amp = resolve_precision("auto", lm.device)  # same precision as the engine's default

    def fwd(b):
        if amp is None:
            return net(b)
        with torch.autocast(lm.device.type, dtype=amp):
            return net(b)

    with torch.inference_mode():
        fwd(batches[0])
        if cuda:
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        for b in batches:
            fwd(b)
        if cuda:
            torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - c


def cog_conversion(
    lm: LoadedModel, path: Path, tile: int, overlap: float, batch: int, workdir: Path, compress: str
) -> dict[str, tuple[float, float]]:
    """Wall and process CPU seconds (all threads) of the final COG step alone, on the engine's output bands.

    ``streamed``: :meth:`StreamedCOG.finish` (what ``predict`` does: overviews were decimated while
    streaming, the COG driver only compresses); ``gdal_overviews``: GDAL's COG driver on the plain
    full-resolution GeoTIFF, computing the overviews itself (the engine before this change).
    """
    import shutil

    from rsviz.inference.cogwriter import StreamedCOG, to_cog

    plain = workdir / "plain.tif"
    predict(lm, path, tile=tile, overlap=overlap, batch_size=batch, output=plain, cog=False, compress="none")
    out = {}
    t, c = time.perf_counter(), time.process_time()
    to_cog(plain, workdir / "conv_gdal.tif", compress)
    out["gdal_overviews"] = (time.perf_counter() - t, time.process_time() - c)
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    with rasterio.open(plain) as ds:
        cog = StreamedCOG(
            scratch, ds.height, ds.width, ds.count, "uint8", ds.transform, ds.crs, descriptions=list(ds.descriptions)
        )
        for y in range(0, ds.height, 512):
            cog.write(ds.read(window=rasterio.windows.Window(0, y, ds.width, min(512, ds.height - y))), y, 0)
    t, c = time.perf_counter(), time.process_time()
    cog.finish(workdir / "conv_streamed.tif", compress)
    out["streamed"] = (time.perf_counter() - t, time.process_time() - c)
    shutil.rmtree(scratch)
    return out


def naive_loop(lm: LoadedModel, path: Path, tile: int, overlap: float) -> float:
    card = lm.card
    lm.net.to(memory_format=torch.contiguous_format)
    mean = np.array(card.input.mean, np.float32)[:, None, None]
    std = np.array(card.input.std, np.float32)[:, None, None]
    t = time.perf_counter()
    with rasterio.open(path) as ds:
        H, W = ds.height, ds.width
        acc = np.zeros((1, H, W), np.float64)
        wsum = np.zeros((H, W), np.float64)
        for y, x in tiles_of(H, tile, overlap):
            a = ds.read(window=rasterio.windows.Window(x, y, tile, tile)).astype(np.float32)
            a = (a / 255.0 - mean) / std
            with torch.inference_mode():
                o = lm.net(torch.from_numpy(a[None]).to(lm.device))
            p = torch.sigmoid(o["seg"])[0].cpu().numpy()
            yy, xx = np.mgrid[0:tile, 0:tile]
            sig = 0.125 * tile
            w = np.exp(-(((yy - tile / 2) ** 2) + ((xx - tile / 2) ** 2)) / (2 * sig**2))
            acc[:, y : y + tile, x : x + tile] += p * w
            wsum[y : y + tile, x : x + tile] += w
        _ = acc / wsum
    return time.perf_counter() - t


def flops_per_tile(lm: LoadedModel, tile: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, lm.card.in_channels, tile, tile, device=lm.device)
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        lm.net(x)
    return float(fc.get_total_flops())


def peak_rss_stream(big: int, tile: int, overlap: float, workdir: Path, rows: int | None = None) -> dict:
    src = workdir / f"big{big}.tif"
    make_raster(src, big, seed=1, height=rows)
    out = str(workdir / "big_out.tif")
    # VmHWM is this process's own high-water mark; getrusage's ru_maxrss is not: Linux carries the parent's
    # peak over fork + exec, so a child of this (large) benchmark process would report the parent's RSS
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from rsviz.inference import predict; "
        f"t=time.perf_counter(); p=predict({MODEL!r}, {str(src)!r}, tile={tile}, overlap={overlap}, output={out!r}, "
        "batch_size=4, device='cpu'); "
        "hwm=[l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(p.stats['tiles'], time.perf_counter()-t, hwm)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    tiles, secs, rss_kb = r.stdout.split()[-3:]
    src.unlink()
    return {
        "size": big,
        "rows": rows or big,
        "tiles": int(tiles),
        "seconds": float(secs),
        "peak_rss_mb": int(rss_kb) / 1024,
        "overlap": overlap,
        "output_mb": (workdir / "big_out.tif").stat().st_size / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big", type=int, default=16384, help="side of the streamed RSS test (0 to skip)")
    ap.add_argument("--big-overlap", type=float, default=0.25)
    ap.add_argument("--big-rows", type=int, default=0, help="rows of the streamed RSS test (0: --big, a square)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    lm = load_model(MODEL, dev)
    mpx = a.size * a.size / 1e6
    ntiles = len(tiles_of(a.size, a.tile, a.overlap))
    rows = {}
    with tempfile.TemporaryDirectory(dir=ROOT) as d:
        d = Path(d)
        src = d / "in.tif"
        make_raster(src, a.size)
        runs = {"a": [], "b_mem": [], "b_cog": [], "b_zstd": [], "c": []}
        steps = [f"{how}_{comp}" for how in ("streamed", "gdal_overviews") for comp in ("deflate", "zstd")]
        cpu = {"a": [], **{k: [] for k in steps}}
        conv_wall = {k: [] for k in steps}
        for _ in range(a.repeats):
            wall, cpus = bare_forward(lm, src, a.tile, a.overlap, a.batch)
            runs["a"].append(wall)
            cpu["a"].append(cpus)
            for comp in ("deflate", "zstd"):
                for how, (wall, cpus) in cog_conversion(lm, src, a.tile, a.overlap, a.batch, d, comp).items():
                    conv_wall[f"{how}_{comp}"].append(wall)
                    cpu[f"{how}_{comp}"].append(cpus)
            t = time.perf_counter()
            predict(lm, src, tile=a.tile, overlap=a.overlap, batch_size=a.batch)
            runs["b_mem"].append(time.perf_counter() - t)
            t = time.perf_counter()
            predict(lm, src, tile=a.tile, overlap=a.overlap, batch_size=a.batch, output=d / "out.tif")
            runs["b_cog"].append(time.perf_counter() - t)
            t = time.perf_counter()
            predict(
                lm, src, tile=a.tile, overlap=a.overlap, batch_size=a.batch, output=d / "out_z.tif", compress="zstd"
            )
            runs["b_zstd"].append(time.perf_counter() - t)
            runs["c"].append(naive_loop(lm, src, a.tile, a.overlap))
        for k, v in runs.items():
            rows[k] = {
                "median_s": statistics.median(v),
                "runs_s": [round(x, 2) for x in v],
                "mpx_per_s": mpx / statistics.median(v),
            }
        cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
        conv_med = {k: statistics.median(v) for k, v in conv_wall.items()}
        big = peak_rss_stream(a.big, a.tile, a.big_overlap, d, a.big_rows or None) if a.big else None
    fl = flops_per_tile(lm, a.tile)
    gflops = fl * ntiles / rows["a"]["median_s"] / 1e9
    info = {
        "device": str(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "model": MODEL,
        "raster": f"{a.size}x{a.size} RGB uint8 GeoTIFF (tiled 512, deflate)",
        "tile": a.tile,
        "overlap": a.overlap,
        "tiles": ntiles,
        "batch": a.batch,
        "gflop_per_tile": fl / 1e9,
        "achieved_gflops_a": gflops,
        "precision": str(resolve_precision("auto", dev) or torch.float32).replace("torch.", ""),
    }
    ca, cb, cc = rows["a"]["mpx_per_s"], rows["b_mem"]["mpx_per_s"], rows["c"]["mpx_per_s"]
    lines = [
        f"### {info['device']} · {info['cores']} cores · torch {info['torch']} ({info['threads']} threads)",
        "",
        f"Model `{MODEL}` ({info['gflop_per_tile']:.1f} GFLOP per {a.tile} px tile, counted with "
        f"`torch.utils.flop_counter`); input {info['raster']}; tile {a.tile}, overlap {a.overlap} "
        f"-> {ntiles} tiles; batch {a.batch}; engine precision `auto` = {info['precision']} (channels_last, "
        f"batch norms folded into the convolutions); "
        f"median of {a.repeats} runs. MPx/s = raster megapixels / second.",
        "",
        "| row | what | median s | MPx/s | vs (a) | vs (c) |",
        "|---|---|---|---|---|---|",
        f"| (a) | bare forward, pre-loaded batches (ceiling) | {rows['a']['median_s']:.2f} | {ca:.3f} | 1.00 | {ca / cc:.2f} |",
        f"| (b) | engine: GeoTIFF -> outputs in memory | {rows['b_mem']['median_s']:.2f} | {cb:.3f} | {cb / ca:.2f} | {cb / cc:.2f} |",
        f"| (b) | engine: GeoTIFF -> COG on disk | {rows['b_cog']['median_s']:.2f} | {rows['b_cog']['mpx_per_s']:.3f} | "
        f"{rows['b_cog']['mpx_per_s'] / ca:.2f} | {rows['b_cog']['mpx_per_s'] / cc:.2f} |",
        f'| (b) | engine: GeoTIFF -> COG on disk, `compress="zstd"` | {rows["b_zstd"]["median_s"]:.2f} | '
        f"{rows['b_zstd']['mpx_per_s']:.3f} | {rows['b_zstd']['mpx_per_s'] / ca:.2f} | {rows['b_zstd']['mpx_per_s'] / cc:.2f} |",
        f"| (c) | naive per-tile loop (model as loaded, NCHW, batch 1, NumPy weights per tile) | {rows['c']['median_s']:.2f} | {cc:.3f} | "
        f"{cc / ca:.2f} | 1.00 |",
        "",
        f"Achieved compute in (a): {gflops:.1f} GFLOP/s.",
        "",
        "Where the COG rows' extra time goes (medians; CPU s = process CPU time summed over all threads):",
        "",
        "| step | wall s | CPU s | CPU s / CPU s of (a) | best COG row if (a) keeps every core busy |",
        "|---|---|---|---|---|",
        f"| (a) bare forward | {rows['a']['median_s']:.2f} | {cpu_med['a']:.2f} | 1.00 | |",
        *[
            f"| final COG step alone, {k.rsplit('_', 1)[1]}, "
            f"{'overviews decimated while streaming (engine)' if k.startswith('streamed') else 'GDAL computes the overviews (previous engine)'} "
            f"| {conv_med[k]:.2f} | {cpu_med[k]:.2f} | {cpu_med[k] / cpu_med['a']:.2f} | "
            f"{cpu_med['a'] / (cpu_med['a'] + cpu_med[k]):.2f} x (a) |"
            for k in steps
        ],
        "",
    ]
    if big:
        lines += [
            f"Streaming {big['rows']} x {big['size']} ({big['rows'] * big['size'] / 1e6:.0f} MPx) GeoTIFF -> COG on {info['device']}: "
            f"{big['tiles']} tiles (overlap {big['overlap']}), {big['seconds']:.0f} s, "
            f"**peak RSS {big['peak_rss_mb']:.0f} MB** (target < 1500 MB), COG {big['output_mb']:.0f} MB.",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"info": info, "rows": rows, "big": big, "cpu_s": cpu_med, "conversion_s": conv_med}, indent=1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    header = "# Benchmarks\n\nProduced by `python scripts/benchmark_inference.py`; figures are whole runs on the stated machine.\n\n"
    old = a.out.read_text() if a.out.exists() else header
    a.out.write_text((old if old.startswith("# Benchmarks") else header) + text + "\n")


if __name__ == "__main__":
    main()
