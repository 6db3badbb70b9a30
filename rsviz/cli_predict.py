"""``python -m rsviz predict``: tiled inference from the command line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rsviz.errors import OutputPathError
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
(class ids, band layout above) and <name>.png (class colours from the model card). The folder
OUTPUT is created (with its parents) if missing; a raster that cannot be predicted is reported
and skipped, and the exit status is then 2. A single OUTPUT file's folder must exist.

With a Sentinel-2 scene model (s2-resize, s2-intermediate, s2-late), INPUT is an L2A scene (a 12-band
GeoTIFF / COG, or a folder of per-band 10 / 20 / 60 m JP2 / TIFF files such as a .SAFE's IMG_DATA). It is
cut into the model's 120 x 120 px patches (1.2 km) over --bounds or the whole scene. OUTPUT is a float32
GeoTIFF with one band per BigEarthNet-19 label (the patch's probability; NaN where a patch was not
predicted), and OUTPUT.geojson is the patch grid with its labels (probability >= 0.5) and probabilities.

Outputs are written under a temporary name beside the target and renamed when complete, so a
failed run leaves no partial file. An existing output is refused unless --overwrite; an output
that is the input (also through a symlink or hard link) is always refused.
"""


def add_inference_options(p: argparse.ArgumentParser, device_help: str) -> None:
    """The tiled-inference options ``predict`` and ``batch`` share: --tile, --overlap, --blend, --batch-size,
    --tta/--no-tta, --device and --compress."""
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
    p.add_argument("--device", default="auto", help=device_help)
    p.add_argument(
        "--match-gsd",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="predict a raster whose GSD lies outside the model card's range resampled to the model's GSD, the "
        "outputs brought back onto its grid (default: on)",
    )
    p.add_argument(
        "--compress",
        choices=["deflate", "zstd", "lzw", "none"],
        default="deflate",
        help="output compression (zstd: faster to write, readable by GDAL >= 2.3)",
    )


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
    add_inference_options(p, device_help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-cog", action="store_true", help="write a plain tiled GeoTIFF instead of a COG")
    p.add_argument(
        "--l2a-baseline",
        default="auto",
        help="with a Sentinel-2 scene model: the L2A processing baseline (04.00 and later subtract the 1000 DN "
        "offset); default: read from the product's metadata or name",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rsviz.errors import RasterReadError, RsvizError
    from rsviz.inference import predict
    from rsviz.models.api import get_model_card, load_model, model_dir
    from rsviz.raster import check_bounds

    inp, out = Path(args.input), Path(args.output)
    model_dir(args.model)  # an unknown name is the first thing to report (it lists the valid names)
    if not inp.exists():
        raise RasterReadError(f"input {inp} does not exist; check the path")
    if args.bounds is not None:
        check_bounds(tuple(args.bounds))
    card = get_model_card(args.model)
    head = card.heads.get("labels")
    if head is not None and head.kind == "multilabel" and not any(h.kind != "multilabel" for h in card.heads.values()):
        return predict_scene_grid(args, inp, out)
    if inp.is_dir():
        if out.exists() and not out.is_dir():
            raise OutputPathError(f"INPUT {inp} is a folder, so OUTPUT must be a folder, but {out} is a file")
        if out.exists() and os.path.samefile(out, inp):
            raise OutputPathError(
                f"the output folder {out} is the input folder; writing there would replace the imagery with the "
                "predictions: give a folder of its own"
            )
    else:
        check_output(out, [inp], overwrite=args.overwrite)
        if "height" in get_model_card(args.model).heads:  # the float32 sidecar of a height head
            check_output(out.with_name(out.stem + "_height.tif"), [inp], overwrite=args.overwrite)
    lm = load_model(args.model, args.device)
    opts = dict(
        tile=args.tile,
        overlap=args.overlap,
        blend=args.blend,
        batch_size=args.batch_size,
        tta=args.tta,
        match_gsd=args.match_gsd,
    )
    if inp.is_dir():
        files = sorted(f for f in inp.iterdir() if f.suffix.lower() in RASTER_SUFFIXES)
        if not files:
            raise RasterReadError(f"no rasters ({', '.join(RASTER_SUFFIXES)}) in folder {inp}")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"cannot create output folder {out} ({exc.strerror}); choose another") from exc
        failed: list[str] = []
        for f in tqdm(files, desc="predict", unit="image", file=sys.stderr, disable=not sys.stderr.isatty()):
            try:
                stem = out / f.stem
                for target in (stem.with_suffix(".tif"), stem.with_suffix(".png")):
                    check_output(target, files, overwrite=args.overwrite)
                pred = predict(lm, f, **opts)
                write_prediction_pair(pred, lm.card, stem)
            except RsvizError as exc:
                failed.append(f.name)
                print(f"error: {f.name}: {exc}", file=sys.stderr)
        done = len(files) - len(failed)
        print(f"wrote {done} class-id GeoTIFFs and colour PNGs to {out}")
        if failed:
            print(f"error: {len(failed)} of {len(files)} rasters failed: {', '.join(failed)}", file=sys.stderr)
            return 2
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


def predict_scene_grid(args: argparse.Namespace, inp: Path, out: Path) -> int:
    """``rsviz predict`` with a multi-label scene model (the BigEarthNet-19 variants): the Sentinel-2 scene
    ``inp`` (a 12-band stack or a per-band folder, :func:`rsviz.sentinel2.open_s2`) is cut into the model's
    120 px patches over ``--bounds`` (or the whole scene) and each patch's label probabilities are written to
    ``OUTPUT`` (a GeoTIFF, one float32 band per label) and ``OUTPUT`` with ``.geojson`` (the grid with label
    lists, threshold 0.5).

    Raises:
        RsvizError: Not a Sentinel-2 scene, a band missing (named), no whole patch in the extent, or an output
            that exists (without ``--overwrite``).
    """
    from rasterio.warp import transform_bounds
    from tqdm import tqdm

    from rsviz.sentinel2 import open_s2, predict_patches
    from rsviz.sentinel2.export import write_geojson, write_geotiff

    tif = out if out.suffix.lower() in (".tif", ".tiff") else out.with_suffix(".tif")
    geojson = tif.with_suffix(".geojson")
    for target in (tif, geojson):
        check_output(target, [inp], overwrite=args.overwrite)
    scene = open_s2(inp, baseline=args.l2a_baseline)
    bounds = None
    if args.bounds is not None:
        b = tuple(float(v) for v in args.bounds)
        bounds = b if args.bounds_crs.upper() == "EPSG:4326" else transform_bounds(args.bounds_crs, "EPSG:4326", *b)
    bar = tqdm(total=0, desc="patch rows", unit="row", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    pred = predict_patches(scene, args.model, bounds=bounds, batch_size=args.batch_size or 32, progress=progress)
    bar.close()
    write_geotiff(pred, tif)
    write_geojson(pred, geojson)
    rows, cols = pred.shape
    print(
        f"{args.model}: {rows} x {cols} patches of 120 px ({int(pred.predicted.sum())} predicted, the rest nodata) "
        f"on {scene.source.name} ({scene.scaling.describe()}); wrote {tif} (one band per label) and {geojson}"
    )
    return 0


def check_output(out: Path, inputs: Sequence[Path], *, overwrite: bool = False) -> None:
    """Refuse an output path that would lose data or cannot be written.

    Args:
        out: The output file.
        inputs: Input files it must not be (compared by path, symlink target and inode, so hard links count).
        overwrite: Allow replacing an existing file that is no input.

    Raises:
        OutputPathError: ``out`` is an input, exists (without ``overwrite``), or its folder is missing,
            not a folder or read-only; the message says which and what to do.
    """
    for inp in inputs:
        same = out.resolve() == inp.resolve() or (out.exists() and inp.exists() and os.path.samefile(out, inp))
        if same:
            raise OutputPathError(
                f"the output {out} is the input {inp} itself (same path, symlink or hard link); writing there would "
                "replace the imagery with the prediction: give another output path"
            )
    if out.exists() or out.is_symlink():
        if out.is_dir():
            raise OutputPathError(f"output {out} is a folder; give a file name such as {out / 'prediction.tif'}")
        if not overwrite:
            raise OutputPathError(f"output {out} already exists; pass --overwrite to replace it, or give a new name")
    parent = out.parent
    if not parent.is_dir():
        raise OutputPathError(f"output folder {parent} does not exist; create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"output folder {parent} is not writable; choose a folder you can write to")


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
    # each file is written under a temporary name beside it and renamed when complete
    tmps: list[Path] = []
    try:
        fd, name = tempfile.mkstemp(prefix=".rsviz-", suffix=".tif", dir=tif.parent)
        os.close(fd)
        tmps.append(Path(name))
        with rasterio.open(tmps[0], "w", **prof) as dst:
            dst.write(cls[None])
            dst.write_colormap(1, {c.id: (*c.color, 255) for c in card.classes})
        fd, name = tempfile.mkstemp(prefix=".rsviz-", suffix=".png", dir=png.parent)
        os.close(fd)
        tmps.append(Path(name))
        Image.fromarray(palette_rgba(cls, card.classes, transparent=(NODATA_CLASS,))).save(tmps[1], format="PNG")
        os.replace(tmps[0], tif)
        os.replace(tmps[1], png)
    except OSError as exc:
        raise OutputPathError(f"cannot write {tif} / {png} ({exc}); check the output folder") from exc
    finally:
        for t in tmps:
            t.unlink(missing_ok=True)
    return tif, png
