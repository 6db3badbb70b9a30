"""``python -m rsviz predict``: tiled inference from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsviz.types import NODATA_CLASS

RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".vrt")

EPILOG = """\
OUTPUT is a uint8 GeoTIFF (a COG unless --no-cog) on INPUT's grid, same CRS and transform over
the window read. Band 1: class id (255 = nodata). Further bands, as the model has them:
probability per class x 255 (binary models: the positive class), predictive entropy / ln(C) x 255,
edge (boundary) probability x 255, TTA variance x 1020 (with --tta), reconstructed input bands
(input units, clipped 0-255). Band descriptions name each band. A height head is written as a
float32 sidecar OUTPUT_height.tif in the card's units.

If INPUT is a folder, every raster in it is predicted into the folder OUTPUT as <name>.tif
(class ids, band layout above) and <name>.png (class colours from the model card).
"""


def add_predict_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="run a model over a raster (or a folder of rasters)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model name (python -m rsviz models list)")
    p.add_argument("input", help="input raster, or a folder of rasters")
    p.add_argument("output", help="output GeoTIFF, or a folder when INPUT is a folder")
    p.add_argument(
        "--bounds",
        nargs=4,
        type=float,
        metavar=("W", "S", "E", "N"),
        help="extent in EPSG:4326 degrees (or --bounds-crs); default: whole raster",
    )
    p.add_argument("--bounds-crs", default="EPSG:4326", help="CRS of --bounds (default EPSG:4326)")
    p.add_argument("--tile", type=int, help="window side in pixels, multiple of 32 (default: model card)")
    p.add_argument("--overlap", type=float, help="window overlap fraction in [0, 1) (default: model card)")
    p.add_argument("--blend", choices=["gaussian", "cosine", "constant"], default="gaussian")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time augmentation (flips and rotations); default: as the model card recommends",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-cog", action="store_true", help="write a plain tiled GeoTIFF instead of a COG")
    p.add_argument(
        "--compress",
        choices=["deflate", "zstd", "lzw", "none"],
        default="deflate",
        help="output compression (zstd: faster to write, readable by GDAL >= 2.3)",
    )
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rsviz.errors import ModelInputError, RasterReadError
    from rsviz.inference import predict
    from rsviz.models.api import load_model

    inp, out = Path(args.input), Path(args.output)
    if out.resolve() == inp.resolve():
        raise ModelInputError(
            f"the output {out} is the input itself; writing there would replace the imagery with the prediction: "
            "give another output path (a folder of its own for a folder of images)"
        )
    lm = load_model(args.model, args.device)
    opts = dict(tile=args.tile, overlap=args.overlap, blend=args.blend, batch_size=args.batch_size, tta=args.tta)
    if inp.is_dir():
        files = sorted(f for f in inp.iterdir() if f.suffix.lower() in RASTER_SUFFIXES)
        if not files:
            raise RasterReadError(f"no rasters ({', '.join(RASTER_SUFFIXES)}) in folder {inp}")
        out.mkdir(parents=True, exist_ok=True)
        for f in tqdm(files, desc="predict", unit="image", file=sys.stderr, disable=not sys.stderr.isatty()):
            pred = predict(lm, f, **opts)
            write_prediction_pair(pred, lm.card, out / f.stem)
        print(f"wrote {len(files)} class-id GeoTIFFs and colour PNGs to {out}")
        return 0
    bar = tqdm(total=0, desc="tiles", unit="tile", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    pred = predict(
        lm,
        inp,
        bounds=tuple(args.bounds) if args.bounds else None,
        bounds_crs=args.bounds_crs,
        output=out,
        cog=not args.no_cog,
        compress=args.compress,
        progress=progress,
        **opts,
    )
    bar.close()
    s = pred.stats
    print(
        f"{args.model}: {pred.window.width}x{pred.window.height} px, {s['tiles']} tiles in {s['seconds']:.1f} s "
        f"({s['mpx_per_s']:.2f} MPx/s) on {pred.options['device']}; wrote {', '.join(s['files'])}"
    )
    return 0


def write_prediction_pair(pred, card, stem: Path) -> tuple[Path, Path]:
    """Write ``<stem>.tif`` (class ids, uint8, input grid) and ``<stem>.png`` (card colours).

    Returns:
        The two paths.
    """
    import rasterio
    from PIL import Image

    from rsviz.display import palette_rgba

    cls = pred.heads["classes"]
    tif, png = stem.with_suffix(".tif"), stem.with_suffix(".png")
    prof = {
        "driver": "GTiff",
        "height": cls.shape[0],
        "width": cls.shape[1],
        "count": 1,
        "dtype": "uint8",
        "nodata": 255,
        "compress": "deflate",
    }
    if pred.crs is not None:
        prof.update(crs=pred.crs, transform=pred.transform)
    with rasterio.open(tif, "w", **prof) as dst:
        dst.write(cls[None])
        dst.write_colormap(1, {c.id: (*c.color, 255) for c in card.classes})
    Image.fromarray(palette_rgba(cls, card.classes, transparent=(NODATA_CLASS,))).save(png)
    return tif, png
