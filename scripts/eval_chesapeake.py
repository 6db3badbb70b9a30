"""The land-cover model out of domain: Chesapeake NAIP patches (1 m) scored on the classes that map honestly (#23).

``python scripts/eval_chesapeake.py [--model landcover-deeplabv3plus]``

The 16 Chesapeake patches of the data mirror (NAIP R, G, B at 1 m; Chesapeake Conservancy land cover) are
predicted by the bundled Dubai land-cover model through :func:`rsviz.inference.predict` with the card's settings.
1 m lies inside the card's GSD range (0.3-1.5 m), so nothing is resampled. The labels are mapped onto the Dubai
classes where the meaning is the same: water -> water, tree canopy and low vegetation -> vegetation, barren ->
land, impervious road -> road. "Impervious (other)" mixes roofs with parking lots and pavements, so it has no
honest Dubai class and is left out (ignore). Building has no reference pixels: every building the model predicts
on a scored pixel is an error of another class. Prints per-class IoU and
pixel accuracy (classes with reference pixels only), pooled over patches by :func:`rsviz.evaluation.pool`, with
a 95 % bootstrap interval over patches, and the share of each class in the reference and in the prediction, for
``docs/model-selection.md``. Test-only: nothing is chosen on these patches.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_gsd import cpu_name  # noqa: E402

from experiments.packaging.figures import intervals  # noqa: E402
from rsviz.datasets import scenes  # noqa: E402
from rsviz.evaluation import evaluate, pool  # noqa: E402
from rsviz.inference import predict  # noqa: E402
from rsviz.models.api import load_model  # noqa: E402

#: Chesapeake class id -> Dubai class name (None: left out).
MAPPING = {1: "water", 2: "vegetation", 3: "vegetation", 4: "land", 5: None, 6: "road"}
SCORED = ("water", "vegetation", "land", "road")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="landcover-deeplabv3plus")
    a = ap.parse_args()
    lm = load_model(a.model, "cpu")
    card = lm.card
    ids = {c.name: c.id for c in card.classes}
    ignore = card.ignore_index
    lut = np.full(256, ignore, np.uint8)
    for src, name in MAPPING.items():
        lut[src] = ids[name] if name else ignore
    results = []
    for ref in scenes("chesapeake-landcover"):
        s = ref.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = predict(lm, s.image[:3], precision="fp32")
        gt = lut[s.targets["classes"]]
        valid = s.valid & (gt != ignore)
        results.append(
            evaluate(p.heads["classes"], gt, "landcover", classes=card.classes, valid=valid, ignore_index=ignore)
        )
    r = pool(results)
    conf = np.asarray(r.confusion)  # rows = reference, columns = prediction, Dubai class ids
    present = [c for c in SCORED if conf[ids[c]].sum() > 0]
    keys = tuple(f"iou_{c}" for c in present) + ("overall_accuracy",)
    iv = intervals(results, keys)
    total = max(int(conf.sum()), 1)
    print(f"CPU: {cpu_name()}; {len(results)} patches, {total:,} scored pixels\n")
    print("| figure | value | 95 % interval over patches |")
    print("|---|---|---|")
    for k in keys:
        lo, hi = iv.get(k, [float("nan")] * 2)
        print(f"| {k} | {float(r.values[k]):.3f} | {lo:.3f}-{hi:.3f} |")
    print("\n| Dubai class | share of reference pixels | share of predicted pixels |")
    print("|---|---|---|")
    for c in card.classes:
        if c.id != ignore:
            print(f"| {c.name} | {conf[c.id].sum() / total:.3f} | {conf[:, c.id].sum() / total:.3f} |")


if __name__ == "__main__":
    main()
