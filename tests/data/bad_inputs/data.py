"""Seeded corpus of bad and odd inputs, built from real sample files (torchgeo ``data.py`` style).

:func:`build` writes every file of the corpus into a folder and returns the cases; each
:class:`Case` says how it is fed to rsviz (``kind``) and what must come out (``expect``: the name
of an :mod:`rsviz.errors` class, or ``"ok"``). Sources: a Banepa OAM chip and a Banepa OSM footprint
GeoJSON from the sample-data mirror (``RSVIZ_DATA_DIR``) and a copy of the bundled ``building-seg``
model folder; the sources are only read.

Run as a script to build into ``tests/data/bad_inputs/corpus``::

    RSVIZ_DATA_DIR=... python tests/data/bad_inputs/data.py
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

SEED = 20
CHIP = "banepa-buildings/data/sample/train/oam/OAM-386690-220241-19.tif"
FOOTPRINTS = "banepa-buildings/data/sample/train/osm/osm_features_ac7e343eb1faacd2.geojson"
MODEL = "building-seg"
SIDE = 64  # side of the small rasters fed to the model (prediction runs on them when they are fine)


@dataclass(frozen=True)
class Case:
    """One input of the corpus.

    Attributes:
        name: Unique id (the file stem).
        kind: ``predict`` (a raster given to :func:`rsviz.inference.predict`), ``read`` (to
            :func:`rsviz.raster.read_raster`), ``footprints`` (a GeoJSON burned as buildings), ``model``
            (a model folder on ``RSVIZ_MODELS_PATH``) or ``cli`` (``argv`` run through ``rsviz``).
        expect: Error class name of :mod:`rsviz.errors`, or ``"ok"``.
        path: The file or folder built.
        argv: For ``cli``: the arguments (``{name}`` placeholders filled by :func:`build`).
    """

    name: str
    kind: str
    expect: str
    path: Path | None = None
    argv: tuple[str, ...] = field(default_factory=tuple)


def _profile(count: int, dtype: str, crs: object, transform: Affine, side: int = SIDE, **kw: object) -> dict:
    prof: dict = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
    }
    prof.update(kw)
    return prof


def _write(path: Path, arr: np.ndarray, **prof: object) -> Path:
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(arr)
    return path


def build(root: Path, mirror: Path, weights: Path) -> list[Case]:
    """Write the corpus into ``root`` and return its cases.

    Args:
        root: Empty (or new) folder to build into.
        mirror: The sample-data folder (``RSVIZ_DATA_DIR``).
        weights: The repository's ``weights/`` folder (its ``building-seg`` is copied, never changed).

    Returns:
        The cases, in a fixed order.
    """
    rng = np.random.default_rng(SEED)
    root.mkdir(parents=True, exist_ok=True)
    r, m, g, c = root / "rasters", root / "models", root / "geojson", root / "cli"
    for d in (r, m, g, c):
        d.mkdir(exist_ok=True)
    cases: list[Case] = []

    def add(name: str, kind: str, expect: str, path: Path | None = None, argv: tuple[str, ...] = ()) -> None:
        cases.append(Case(name, kind, expect, path, argv))

    # --- the real chip, as a plain GeoTIFF, and its 64 px corner -------------------------------------------
    with rasterio.open(mirror / CHIP) as src:
        chip = src.read()
        crs, transform = src.crs, src.transform
    assert crs is not None, "the Banepa chip is georeferenced by its .aux.xml"
    full = _write(r / "chip.tif", chip, **_profile(3, "uint8", crs, transform, side=chip.shape[1]))
    small = chip[:, :SIDE, :SIDE]
    good = _write(r / "good.tif", small, **_profile(3, "uint8", crs, transform))
    add("good", "predict", "ok", good)

    # --- unreadable files -----------------------------------------------------------------------------------
    data = full.read_bytes()
    (r / "truncated_half.tif").write_bytes(data[: len(data) // 2])
    add("truncated_half", "predict", "RasterReadError", r / "truncated_half.tif")
    add("truncated_half_read", "read", "RasterReadError", r / "truncated_half.tif")
    (r / "truncated_header.tif").write_bytes(data[:100])
    add("truncated_header", "predict", "RasterReadError", r / "truncated_header.tif")
    (r / "garbage.tif").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    add("garbage", "predict", "RasterReadError", r / "garbage.tif")
    (r / "empty.tif").write_bytes(b"")
    add("empty_file", "predict", "RasterReadError", r / "empty.tif")
    (r / "text.tif").write_text("this is not a raster\n")
    add("text_as_tif", "read", "RasterReadError", r / "text.tif")
    jpeg = (mirror / CHIP).read_bytes()
    (r / "truncated_jpeg.tif").write_bytes(jpeg[: len(jpeg) // 3])
    add("truncated_jpeg_chip", "predict", "RasterReadError", r / "truncated_jpeg.tif")
    add("missing_file", "read", "RasterReadError", r / "does_not_exist.tif")

    # --- value range and dtype ---------------------------------------------------------------------------------
    f01 = (small / 255.0).astype("float32")
    add(
        "float32_0_1",
        "predict",
        "ModelInputError",
        _write(r / "float01.tif", f01, **_profile(3, "float32", crs, transform)),
    )
    fn = f01.copy()
    fn[:, rng.integers(0, SIDE, 40), rng.integers(0, SIDE, 40)] = np.nan
    add(
        "float32_0_1_nan",
        "predict",
        "ModelInputError",
        _write(r / "float01_nan.tif", fn, **_profile(3, "float32", crs, transform)),
    )
    f255 = small.astype("float32")
    f255[:, rng.integers(0, SIDE, 40), rng.integers(0, SIDE, 40)] = np.nan
    add(
        "float32_0_255_nan",
        "predict",
        "ok",
        _write(r / "float255_nan.tif", f255, **_profile(3, "float32", crs, transform)),
    )
    twelve = (small.astype("uint16") * 16).astype("uint16")
    twelve[:, : SIDE // 2 + 8] = np.minimum(twelve[:, : SIDE // 2 + 8] // 64, 200)  # dark top rows, below 255
    big = _write(
        r / "twelve_bit_dark_top.tif",
        np.concatenate([twelve] * 2, axis=1)[:, :SIDE],
        **_profile(3, "uint16", crs, transform),
    )
    add("uint16_12bit_dark_top", "predict", "ModelInputError", big)
    tall = np.zeros((3, 256, SIDE), "uint16")  # dark for the first 64+ rows the old check read, bright below
    tall[:, 200:] = 4000
    add(
        "uint16_12bit_dark_top_tall",
        "predict",
        "ModelInputError",
        _write(r / "dark_top_tall.tif", tall, **{**_profile(3, "uint16", crs, transform), "height": 256}),
    )
    add(
        "uint16_full_range",
        "predict",
        "ModelInputError",
        _write(
            r / "u16.tif",
            rng.integers(0, 65535, (3, SIDE, SIDE), dtype=np.uint16),
            **_profile(3, "uint16", crs, transform),
        ),
    )
    add(
        "uint16_values_below_256",
        "predict",
        "ok",
        _write(r / "u16_small.tif", small.astype("uint16"), **_profile(3, "uint16", crs, transform)),
    )
    add(
        "int16_negative",
        "predict",
        "ModelInputError",
        _write(r / "i16_neg.tif", small.astype("int16") - 128, **_profile(3, "int16", crs, transform)),
    )
    add(
        "float64_above_255",
        "predict",
        "ModelInputError",
        _write(r / "f64.tif", small.astype("float64") * 300, **_profile(3, "float64", crs, transform)),
    )
    all_nd = _write(r / "all_nodata.tif", np.zeros_like(small), **_profile(3, "uint8", crs, transform, nodata=0))
    add("all_nodata", "predict", "ok", all_nd)
    add(
        "all_nan",
        "predict",
        "ok",
        _write(
            r / "all_nan.tif", np.full((3, SIDE, SIDE), np.nan, "float32"), **_profile(3, "float32", crs, transform)
        ),
    )

    # --- bands, geometry, size --------------------------------------------------------------------------------
    add(
        "one_band",
        "predict",
        "BandCountError",
        _write(r / "one_band.tif", small[:1], **_profile(1, "uint8", crs, transform)),
    )
    add(
        "two_bands",
        "predict",
        "BandCountError",
        _write(r / "two_bands.tif", small[:2], **_profile(2, "uint8", crs, transform)),
    )
    four = np.concatenate([small, small[:1]])
    add(
        "four_bands",
        "predict",
        "BandCountError",
        _write(r / "four_bands.tif", four, **_profile(4, "uint8", crs, transform)),
    )
    (r / "zero_bands.vrt").write_text(f'<VRTDataset rasterXSize="{SIDE}" rasterYSize="{SIDE}"></VRTDataset>\n')
    add("zero_bands_vrt", "predict", "RasterReadError", r / "zero_bands.vrt")
    (r / "zero_size.vrt").write_text(
        '<VRTDataset rasterXSize="0" rasterYSize="0"><VRTRasterBand dataType="Byte" band="1"/></VRTDataset>\n'
    )
    add("zero_size_vrt", "predict", "RasterReadError", r / "zero_size.vrt")
    rot = transform * Affine.rotation(30)
    add("rotated_transform", "predict", "ok", _write(r / "rotated.tif", small, **_profile(3, "uint8", crs, rot)))
    no_crs = _write(r / "no_crs.tif", small, **_profile(3, "uint8", None, Affine.identity()))
    add("no_crs", "predict", "ok", no_crs)
    add(
        "one_pixel",
        "predict",
        "ok",
        _write(r / "one_pixel.tif", small[:, :1, :1], **_profile(3, "uint8", crs, transform, side=1)),
    )
    huge = r / "huge_sparse.tif"
    with rasterio.open(
        huge,
        "w",
        **_profile(
            1,
            "uint8",
            crs,
            transform,
            side=200_000,
            tiled=True,
            blockxsize=512,
            blockysize=512,
            sparse_ok=True,
            BIGTIFF="YES",
        ),
    ):
        pass
    add("huge_sparse_read", "read", "ExtentError", huge)

    # --- footprints --------------------------------------------------------------------------------------------
    fc = json.loads((mirror / FOOTPRINTS).read_text(encoding="utf-8"))
    polys = [f for f in fc["features"] if f.get("geometry") and f["geometry"]["type"] in ("Polygon", "MultiPolygon")]
    assert polys, "the Banepa footprints have polygons"

    def gj(name: str, obj: object, expect: str) -> None:
        p = g / f"{name}.geojson"
        p.write_text(json.dumps(obj), encoding="utf-8")
        add(name, "footprints", expect, p)

    def coll(features: list) -> dict:
        return {"type": "FeatureCollection", "features": features}

    def centroid(f: dict) -> list[float]:
        ring = (
            f["geometry"]["coordinates"][0]
            if f["geometry"]["type"] == "Polygon"
            else f["geometry"]["coordinates"][0][0]
        )
        return [float(np.mean([p[0] for p in ring])), float(np.mean([p[1] for p in ring]))]

    pts = [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": centroid(f)}}
        for f in polys[:5]
    ]
    gj("footprints_ok", coll(polys[:5]), "ok")
    gj("points_as_footprints", coll(pts), "GeometryTypeError")
    lines = [
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "LineString", "coordinates": f["geometry"]["coordinates"][0]},
        }
        for f in polys[:5]
        if f["geometry"]["type"] == "Polygon"
    ]
    gj("lines_as_footprints", coll(lines), "GeometryTypeError")
    gj("polygons_and_points", coll(polys[:3] + pts[:2]), "GeometryTypeError")
    mp = [
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "MultiPoint", "coordinates": [centroid(f) for f in polys[:3]]},
        }
    ]
    gj("multipoint_as_footprints", coll(mp), "GeometryTypeError")
    gj("empty_collection", coll([]), "ok")
    gj("null_geometries", coll([{"type": "Feature", "properties": {}, "geometry": None}]), "ok")
    gj("feature_not_collection", polys[0], "RsvizError")
    gj("json_list", [polys[0]], "RsvizError")
    gj("no_features_key", {"type": "FeatureCollection"}, "RsvizError")
    gj(
        "bad_crs_name",
        {**coll(polys[:2]), "crs": {"type": "name", "properties": {"name": "EPSG:999999"}}},
        "RsvizError",
    )
    gj(
        "garbage_crs_name",
        {**coll(polys[:2]), "crs": {"type": "name", "properties": {"name": "urn:nonsense"}}},
        "RsvizError",
    )
    text = (mirror / FOOTPRINTS).read_text(encoding="utf-8")
    (g / "cut_off.geojson").write_text(text[: len(text) // 2], encoding="utf-8")
    add("cut_off_geojson", "footprints", "RsvizError", g / "cut_off.geojson")
    (g / "gzipped.geojson").write_bytes(gzip.compress(text.encode()))
    add("binary_geojson", "footprints", "RsvizError", g / "gzipped.geojson")

    # --- model folders -----------------------------------------------------------------------------------------
    src_model = weights / MODEL

    def model(name: str, expect: str = "ModelFolderError") -> Path:
        d = m / name
        shutil.copytree(src_model, d)
        add(name, "model", expect, d)
        return d

    card = (src_model / "card.json").read_text(encoding="utf-8")
    (model("card_cut_off") / "card.json").write_text(card[: len(card) // 2], encoding="utf-8")
    cd = json.loads(card)
    del cd["input"]
    (model("card_lacks_input") / "card.json").write_text(json.dumps(cd), encoding="utf-8")
    cd = json.loads(card)
    cd["unknown_key"] = 1
    (model("card_unknown_key") / "card.json").write_text(json.dumps(cd), encoding="utf-8")
    (model("card_is_list") / "card.json").write_text("[]", encoding="utf-8")
    cd = json.loads(card)
    cd["input"]["bogus"] = 3
    (model("card_input_bad_key") / "card.json").write_text(json.dumps(cd), encoding="utf-8")
    w = (src_model / "model.safetensors").read_bytes()
    (model("weights_truncated") / "model.safetensors").write_bytes(w[: len(w) // 2])
    (model("weights_garbage") / "model.safetensors").write_bytes(rng.integers(0, 256, 1024, dtype=np.uint8).tobytes())
    (model("weights_missing") / "model.safetensors").unlink()
    (model("config_cut_off") / "config.json").write_text('{"arch": ', encoding="utf-8")

    # --- command line ------------------------------------------------------------------------------------------
    with rasterio.open(good) as ds:
        from rasterio.warp import transform_bounds

        w4, s4, e4, n4 = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    pred = ["predict", MODEL, str(good), str(c / "out.tif"), "--device", "cpu", "--tile", "64"]
    add("bounds_west_gt_east", "cli", "ExtentError", argv=(*pred, "--bounds", str(e4), str(s4), str(w4), str(n4)))
    add("bounds_south_gt_north", "cli", "ExtentError", argv=(*pred, "--bounds", str(w4), str(n4), str(e4), str(s4)))
    add("bounds_nan", "cli", "ExtentError", argv=(*pred, "--bounds", "nan", str(s4), str(e4), str(n4)))
    add("bounds_inf", "cli", "ExtentError", argv=(*pred, "--bounds", str(w4), str(s4), "inf", str(n4)))
    add("bounds_elsewhere", "cli", "ExtentError", argv=(*pred, "--bounds", "10", "10", "10.1", "10.1"))
    add(
        "bounds_bad_crs",
        "cli",
        "CRSError",
        argv=(*pred, "--bounds", str(w4), str(s4), str(e4), str(n4), "--bounds-crs", "EPSG:bogus"),
    )
    add(
        "bounds_no_crs_raster",
        "cli",
        "CRSError",
        argv=("predict", MODEL, str(no_crs), str(c / "out.tif"), "--device", "cpu", "--bounds", "0", "0", "1", "1"),
    )
    add("tile_not_multiple_of_32", "cli", "ModelInputError", argv=(*pred[:-1], "50"))
    add("tile_negative", "cli", "ModelInputError", argv=(*pred[:-1], "-64"))
    add("overlap_one", "cli", "ModelInputError", argv=(*pred, "--overlap", "1.0"))
    add("overlap_nan", "cli", "ModelInputError", argv=(*pred, "--overlap", "nan"))
    link_dir = c / "links"
    link_dir.mkdir()
    (link_dir / "sym.tif").symlink_to(good)
    hard = r / "hard_src.tif"
    shutil.copy(good, hard)
    os.link(hard, link_dir / "hard.tif")
    add(
        "output_is_input_symlink",
        "cli",
        "OutputPathError",
        argv=("predict", MODEL, str(good), str(link_dir / "sym.tif"), "--device", "cpu"),
    )
    add(
        "output_is_input_hardlink",
        "cli",
        "OutputPathError",
        argv=("predict", MODEL, str(hard), str(link_dir / "hard.tif"), "--device", "cpu"),
    )
    add("output_is_input", "cli", "OutputPathError", argv=("predict", MODEL, str(good), str(good), "--device", "cpu"))
    existing = c / "existing.tif"
    existing.write_bytes(b"keep me")
    add("output_exists", "cli", "OutputPathError", argv=("predict", MODEL, str(good), str(existing), "--device", "cpu"))
    add(
        "output_folder_missing",
        "cli",
        "OutputPathError",
        argv=("predict", MODEL, str(good), str(c / "no" / "such" / "out.tif"), "--device", "cpu"),
    )
    add(
        "output_parent_is_file",
        "cli",
        "OutputPathError",
        argv=("predict", MODEL, str(good), str(existing / "out.tif"), "--device", "cpu"),
    )
    ro = c / "read_only"
    ro.mkdir()
    ro.chmod(0o555)
    add(
        "output_folder_read_only",
        "cli",
        "OutputPathError",
        argv=("predict", MODEL, str(good), str(ro / "out.tif"), "--device", "cpu"),
    )
    add(
        "input_missing",
        "cli",
        "RasterReadError",
        argv=("predict", MODEL, str(r / "nope.tif"), str(c / "o.tif"), "--device", "cpu"),
    )
    add("unknown_model", "cli", "UnknownNameError", argv=("predict", "no-such-model", str(good), str(c / "o.tif")))
    add(
        "evaluate_truncated_pred",
        "cli",
        "RasterReadError",
        argv=(
            "evaluate",
            "--pred",
            str(r / "truncated_half.tif"),
            "--gt",
            str(good),
            "--task",
            "buildings",
            "--out",
            str(c / "e.json"),
        ),
    )
    add(
        "evaluate_huge_pred",
        "cli",
        "ExtentError",
        argv=("evaluate", "--pred", str(huge), "--gt", str(good), "--task", "buildings", "--out", str(c / "e.json")),
    )
    add(
        "evaluate_grid_mismatch",
        "cli",
        "GridMismatchError",
        argv=("evaluate", "--pred", str(good), "--gt", str(full), "--task", "buildings", "--out", str(c / "e.json")),
    )
    add(
        "evaluate_out_folder_missing",
        "cli",
        "OutputPathError",
        argv=(
            "evaluate",
            "--pred",
            str(good),
            "--gt",
            str(good),
            "--task",
            "buildings",
            "--out",
            str(c / "no" / "e.json"),
        ),
    )
    add(
        "evaluate_out_is_gt",
        "cli",
        "OutputPathError",
        argv=(
            "evaluate",
            "--pred",
            str(good),
            "--gt",
            str(hard),
            "--task",
            "buildings",
            "--out",
            str(link_dir / "hard.tif"),
        ),
    )
    (c / "classes.json").write_text('[{"id": 0', encoding="utf-8")
    add(
        "evaluate_classes_cut_off",
        "cli",
        "RsvizError",
        argv=(
            "evaluate",
            "--pred",
            str(one := r / "one_band.tif"),
            "--gt",
            str(one),
            "--task",
            "landcover",
            "--classes",
            str(c / "classes.json"),
            "--out",
            str(c / "e.json"),
        ),
    )
    return cases


if __name__ == "__main__":
    out = Path(__file__).with_name("corpus")
    shutil.rmtree(out, ignore_errors=True)
    built = build(out, Path(os.environ["RSVIZ_DATA_DIR"]), Path(__file__).resolve().parents[3] / "weights")
    print(f"{len(built)} cases in {out}", file=sys.stderr)
