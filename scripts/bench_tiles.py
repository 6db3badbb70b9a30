"""Benchmark the XYZ tile server (rsviz.tiles + rsviz.app.routes) on large COGs.

Builds, into ``--workdir`` (default: a folder under ``RSVIZ_CACHE_DIR``, else a temp dir; never
committed):

* ``imagery.tif``: 20,000 x 20,000 3-band uint8 JPEG COG, UTM 45N at 0.3 m, mosaicked from real
  Banepa OpenAerialMap chips of the sample-data mirror (``RSVIZ_DATA_DIR``);
* ``classes.tif``: a class-id COG on the same grid (ids 0/1/2 from the chips' brightness, 255 for
  the darkest pixels), nearest overviews;
* ``s2.tif``: 10,980 x 10,980 x 12-band uint16 COG (a Sentinel-2 tile's size), UTM 33N at 10 m,
  mosaicked from the real BigEarthNet patches of the mirror (20 m / 60 m bands upsampled with
  nearest), else a seeded synthetic.

Each is written by GDAL's COG driver from a VRT that repeats a small mosaic, so no raster is ever
held in memory whole. It then serves ``tile_routes()`` with uvicorn on loopback in a subprocess,
measures tile latency (p50 / p95, cold = first request of a tile on a fresh server, warm = the same
tiles again) for 1 and 6 concurrent clients (threads with keep-alive ``http.client``), the time to
fill a 1,400 x 900 px viewport warm (all tiles of one zoom covering it, 6 connections like a
browser), and the server's peak RSS (``VmHWM`` from ``/proc``). Prints a markdown table.

Usage::

    RSVIZ_DATA_DIR=/path/to/rsviz-data python scripts/bench_tiles.py [--quick] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import math
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.shutil import copy as rio_copy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsviz.app.routes import TILE_PREFIX, tile_routes  # noqa: E402
from rsviz.tiles import REGISTRY, Layer, LayerKind, default_rgb_bands, imagery_rescale, layer_info  # noqa: E402

CLASS_COLOURS = ((0, (120, 120, 120, 160)), (1, (255, 200, 0, 200)), (2, (0, 160, 255, 200)))
S2_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
VIEWPORT = (1400, 900)


# --- building the rasters ---------------------------------------------------------------------


def _mosaic_tiff(path: Path, array: np.ndarray, nodata: float | None = None) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=array.shape[2],
        height=array.shape[1],
        count=array.shape[0],
        dtype=array.dtype.name,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        nodata=nodata,
    ) as ds:
        ds.write(array)
    return path


def _repeat_vrt(unit: Path, out: Path, size: int, crs: str, transform: Affine, descriptions=()) -> Path:
    """A VRT of ``size`` x ``size`` px tiling ``unit`` (a small mosaic) with a new georeference."""
    with rasterio.open(unit) as u:
        uw, uh, count, dtype, nodata = u.width, u.height, u.count, u.dtypes[0], u.nodata
    gdal_type = {"uint8": "Byte", "uint16": "UInt16"}[dtype]
    from rasterio.crs import CRS

    wkt = CRS.from_user_input(crs).to_wkt()
    gt = ", ".join(repr(v) for v in transform.to_gdal())
    bands = []
    for b in range(1, count + 1):
        srcs = []
        for row in range(0, size, uh):
            for col in range(0, size, uw):
                w, h = min(uw, size - col), min(uh, size - row)
                srcs.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{unit}</SourceFilename>'
                    f"<SourceBand>{b}</SourceBand>"
                    f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                    f'<DstRect xOff="{col}" yOff="{row}" xSize="{w}" ySize="{h}"/></SimpleSource>'
                )
        desc = f"<Description>{descriptions[b - 1]}</Description>" if descriptions else ""
        nd = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
        bands.append(f'<VRTRasterBand dataType="{gdal_type}" band="{b}">{desc}{nd}{"".join(srcs)}</VRTRasterBand>')
    out.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{wkt}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )
    return out


def _to_cog(vrt: Path, out: Path, **options: str) -> Path:
    t0 = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=512 * 1024 * 1024, GDAL_NUM_THREADS="ALL_CPUS"):
        rio_copy(vrt, out, driver="COG", BLOCKSIZE="512", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS", **options)
    print(f"  wrote {out.name} ({out.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def _banepa_chips(data_dir: Path) -> list[np.ndarray]:
    paths = sorted(glob.glob(str(data_dir / "banepa-buildings/data/sample/*/oam/OAM-*.tif")))
    if not paths:
        raise SystemExit(f"no Banepa OAM chips under {data_dir}; set RSVIZ_DATA_DIR to the sample-data mirror")
    chips = []
    for p in paths[:16]:
        with rasterio.open(p) as ds:
            chips.append(ds.read(indexes=(1, 2, 3), out_shape=(3, 512, 512)))
    return chips


def build_imagery(work: Path, size: int, data_dir: Path) -> tuple[Path, Path]:
    """The RGB COG and a class COG on its grid, from a 4 x 4 mosaic of real chips tiled to ``size``."""
    img, cls = work / f"imagery-{size}.tif", work / f"classes-{size}.tif"
    if img.exists() and cls.exists():
        return img, cls
    chips = _banepa_chips(data_dir)
    while len(chips) < 16:
        chips += chips
    unit = np.zeros((3, 2048, 2048), np.uint8)
    for i, chip in enumerate(chips[:16]):
        r, c = divmod(i, 4)
        unit[:, r * 512 : (r + 1) * 512, c * 512 : (c + 1) * 512] = chip
    grey = unit.astype(np.float32).mean(axis=0)
    classes = np.digitize(grey, np.percentile(grey, [33, 66])).astype(np.uint8)
    classes[grey < np.percentile(grey, 3)] = 255  # "no prediction"
    transform = Affine(0.3, 0, 340_000.0, 0, -0.3, 3_060_000.0)  # UTM 45N, near Banepa
    u_img = _mosaic_tiff(work / "unit-imagery.tif", unit)
    u_cls = _mosaic_tiff(work / "unit-classes.tif", classes[None], nodata=None)
    _to_cog(_repeat_vrt(u_img, work / "imagery.vrt", size, "EPSG:32645", transform), img, COMPRESS="JPEG", QUALITY="85")
    _to_cog(
        _repeat_vrt(u_cls, work / "classes.vrt", size, "EPSG:32645", transform),
        cls,
        COMPRESS="DEFLATE",
        OVERVIEW_RESAMPLING="NEAREST",
    )
    return img, cls


def _bigearthnet_patches(data_dir: Path) -> list[np.ndarray]:
    patches = []
    for folder in sorted(glob.glob(str(data_dir / "bigearthnet/tests/datasets/tiny/S2*"))):
        stack = []
        for band in S2_ORDER:
            files = glob.glob(f"{folder}/*_{band}.tif")
            if not files:
                break
            with rasterio.open(files[0]) as ds:
                a = ds.read(1)
            stack.append(np.kron(a, np.ones((120 // a.shape[0],) * 2, a.dtype)))  # nearest upsampling
        if len(stack) == 12:
            patches.append(np.stack(stack))
    return patches


def build_s2(work: Path, size: int, data_dir: Path) -> tuple[Path, str]:
    out = work / f"s2-{size}.tif"
    patches = _bigearthnet_patches(data_dir)
    source = f"{len(patches)} real BigEarthNet patches" if patches else "seeded synthetic"
    if out.exists():
        return out, source
    rng = np.random.default_rng(0)
    if not patches:
        patches = [rng.normal(800 + 150 * np.arange(12)[:, None, None], 200, (12, 120, 120)).clip(0).astype(np.uint16)]
    unit = np.zeros((12, 1200, 1200), np.uint16)
    for r in range(10):
        for c in range(10):
            unit[:, r * 120 : (r + 1) * 120, c * 120 : (c + 1) * 120] = patches[int(rng.integers(len(patches)))]
    u = _mosaic_tiff(work / "unit-s2.tif", unit)
    transform = Affine(10.0, 0, 399_960.0, 0, -10.0, 5_800_020.0)  # a UTM 33N Sentinel-2 tile's origin
    _to_cog(
        _repeat_vrt(u, work / "s2.vrt", size, "EPSG:32633", transform, S2_ORDER),
        out,
        COMPRESS="ZSTD",
        PREDICTOR="2",
        LEVEL="1",
    )
    return out, source


# --- the server -------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Child process: register the layers, write their ids, serve on loopback."""
    import uvicorn
    from starlette.applications import Starlette

    s2 = Path(args.s2)
    bands = default_rgb_bands(s2)
    layers = {
        "imagery": Layer(LayerKind.IMAGERY, Path(args.imagery), bands=(1, 2, 3)),
        "classes": Layer(LayerKind.CLASSES, Path(args.classes), colormap=CLASS_COLOURS),
        "s2": Layer(LayerKind.IMAGERY, s2, bands=bands, rescale=imagery_rescale(s2, bands)),
    }
    ids = {name: REGISTRY.register(layer) for name, layer in layers.items()}
    infos = {name: layer_info(layer).__dict__ for name, layer in layers.items()}
    # the readers opened for the set-up belong to this thread; the request threads open their own
    from rsviz.tiles.readers import close_thread_readers

    close_thread_readers()
    rss = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("VmRSS:"))
    doc = {"ids": ids, "infos": infos, "setup_rss_mib": int(rss.split()[1]) / 1024}
    Path(args.ids).write_text(json.dumps(doc))
    uvicorn.run(
        Starlette(routes=tile_routes()), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, imagery: Path, classes: Path, s2: Path, work: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        ids = work / f"ids-{self.port}.json"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--port", str(self.port), "--ids", str(ids)]
            + ["--imagery", str(imagery), "--classes", str(classes), "--s2", str(s2)],
            env={**os.environ, **env},
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if ids.exists():
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        break
                except OSError:
                    pass
            if self.proc.poll() is not None:
                raise SystemExit("the tile server exited during start-up")
            time.sleep(0.2)
        doc = json.loads(ids.read_text())
        self.ids, self.infos, self.setup_rss_mib = doc["ids"], doc["infos"], doc["setup_rss_mib"]

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# --- clients ----------------------------------------------------------------------------------

Tile = tuple[int, int, int]


def _lonlat_to_px(lon: float, lat: float, z: int) -> tuple[float, float]:
    n = 2**z * 256
    return (lon + 180.0) / 360.0 * n, (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n


def viewport_tiles(cx: float, cy: float, z: int) -> list[Tile]:
    """All tiles of zoom ``z`` covering a 1,400 x 900 px viewport centred on global pixel ``(cx, cy)``."""
    w, h = VIEWPORT
    x0, x1 = int((cx - w / 2) // 256), int((cx + w / 2 - 1) // 256)
    y0, y1 = int((cy - h / 2) // 256), int((cy + h / 2 - 1) // 256)
    return [(z, x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]


def random_viewports(info: dict, zooms: list[int], count: int, rng: random.Random) -> list[list[Tile]]:
    """``count`` viewports inside the layer's bounds, cycling through ``zooms``."""
    w, s, e, n = info["bounds"]
    out = []
    for i in range(count):
        z = zooms[i % len(zooms)]
        (px0, py1), (px1, py0) = _lonlat_to_px(w, s, z), _lonlat_to_px(e, n, z)
        mx, my = min(VIEWPORT[0] / 2, (px1 - px0) / 2), min(VIEWPORT[1] / 2, (py1 - py0) / 2)
        cx, cy = rng.uniform(px0 + mx, px1 - mx), rng.uniform(py0 + my, py1 - my)
        out.append(viewport_tiles(cx, cy, z))
    return out


def fetch_all(port: int, layer_id: str, tiles: list[Tile], clients: int) -> tuple[list[float], float]:
    """GET ``tiles`` with ``clients`` threads (one keep-alive connection each): per-tile ms, wall s."""
    local = threading.local()

    def get(t: Tile) -> float:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        z, x, y = t
        t0 = time.perf_counter()
        conn.request("GET", f"/{TILE_PREFIX}/{layer_id}/{z}/{x}/{y}.png")
        r = conn.getresponse()
        body = r.read()
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200 or not body:
            raise RuntimeError(f"tile {t}: HTTP {r.status}")
        return ms

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = list(pool.map(get, tiles))
    return lat, time.perf_counter() - t0


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def bench(args: argparse.Namespace) -> None:
    data_dir = Path(os.environ.get("RSVIZ_DATA_DIR", ""))
    if args.workdir:
        work = Path(args.workdir)
    elif os.environ.get("RSVIZ_CACHE_DIR"):
        work = Path(os.environ["RSVIZ_CACHE_DIR"]) / "bench-tiles"
    else:
        work = Path(tempfile.mkdtemp(prefix="rsviz-bench-tiles-"))
    work.mkdir(parents=True, exist_ok=True)
    img_size, s2_size = (4096, 2048) if args.quick else (20_000, 10_980)
    print(f"building rasters in {work}", flush=True)
    imagery, classes = build_imagery(work, img_size, data_dir)
    s2, s2_source = build_s2(work, s2_size, data_dir)

    server_env = dict(kv.split("=", 1) for kv in args.server_env)
    rng = random.Random(0)
    rows: list[tuple] = []
    viewport_rows: list[tuple] = []
    rss = []
    n_view = 2 if args.quick else 4
    for clients in (1, 6):
        server = Server(imagery, classes, s2, work, server_env)  # fresh: no open readers, empty GDAL cache
        try:
            for name in ("imagery", "classes", "s2"):
                info = server.infos[name]
                nz = info["native_zoom"]
                zooms = [nz, nz - 1, nz - 3, nz - 5]
                views = random_viewports(info, zooms, n_view, rng)
                tiles = [t for v in views for t in v]
                cold, _ = fetch_all(server.port, server.ids[name], tiles, clients)
                warm, _ = fetch_all(server.port, server.ids[name], tiles, clients)
                rows.append((name, clients, len(tiles), cold, warm))
                if clients == 6:
                    for v in views:
                        fetch_all(server.port, server.ids[name], v, 6)  # warm it
                        _, wall = fetch_all(server.port, server.ids[name], v, 6)
                        viewport_rows.append((name, v[0][0], len(v), wall))
            rss.append((server.setup_rss_mib, server.peak_rss_mib()))
        finally:
            server.stop()

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print()
    print(f"CPU: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; rasterio {rasterio.__version__}")
    print(f"server environment: {server_env or 'default'}; load average at the end: {os.getloadavg()}")
    print(
        f"imagery {img_size} x {img_size} x 3 uint8 JPEG COG; classes {img_size} x {img_size} uint8 DEFLATE COG;"
        f" s2 {s2_size} x {s2_size} x 12 uint16 ZSTD COG ({s2_source}); 256 px PNG tiles"
    )
    print()
    print("| layer | clients | tiles | cold p50 ms | cold p95 ms | warm p50 ms | warm p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, clients, n, cold, warm in rows:
        print(
            f"| {name} | {clients} | {n} | {_pct(cold, 50):.1f} | {_pct(cold, 95):.1f} |"
            f" {_pct(warm, 50):.1f} | {_pct(warm, 95):.1f} |"
        )
    print()
    print("| layer | zoom | tiles in a 1400 x 900 viewport | warm fill s (6 connections) |")
    print("|---|---|---|---|")
    for name, z, n, wall in viewport_rows:
        print(f"| {name} | {z} | {n} | {wall:.3f} |")
    print()
    for (setup, peak), clients in zip(rss, (1, 6)):
        print(
            f"server ({clients}-client run): RSS after imports and set-up {setup:.0f} MiB"
            f" (torch comes with `import rsviz`), peak RSS (VmHWM) {peak:.0f} MiB, growth {peak - setup:.0f} MiB"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small rasters (4096 px imagery, 2048 px S2): a smoke test")
    p.add_argument("--workdir", help="where the rasters are built (default: RSVIZ_CACHE_DIR/bench-tiles or a temp dir)")
    p.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="environment of the server (repeatable)"
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--imagery", help=argparse.SUPPRESS)
    p.add_argument("--classes", help=argparse.SUPPRESS)
    p.add_argument("--s2", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
