"""Out-of-domain building scenes predicted at their own GSD and resampled to the model's (issue #23, item 1).

``python scripts/eval_gsd.py [--models building-seg building-mtl] [--sets tanzania austin joplin]``

For each scene (the Tanzania crop at 0.077 m and Austin at 0.3 m from the tanzania-austin-buildings samples;
the four Joplin tiles at 0.6 m, pooled) the bundled model predicts the file twice through
:func:`rsviz.inference.predict`, with ``match_gsd=False`` and ``True`` (the card's TTA and post-processing), and
:func:`rsviz.evaluation.evaluate_sample` scores both on the native grid: pixel IoU, and object F1 at IoU 0.5
pooled over a set's images. Prints a Markdown table (with the CPU) for ``docs/model-selection.md``; these sets
are test-only, so nothing is chosen on them.
"""

from __future__ import annotations

import argparse
import platform
import time

from rsviz.datasets import scenes
from rsviz.evaluation import evaluate_sample, pool
from rsviz.geo import gsd_metres
from rsviz.inference import predict
from rsviz.inference.gsd import target_gsd
from rsviz.models.api import load_model

SETS = {
    "tanzania": ("tanzania-austin-buildings", "tanzania"),
    "austin": ("tanzania-austin-buildings", "austin"),
    "joplin": ("joplin-buildings", None),
}


def cpu_name() -> str:
    """The CPU model and whether it has AVX-512 BF16 (for the figures' caption)."""
    name, flags = platform.processor() or "cpu", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name in ("", "cpu", platform.processor()):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    words = flags.split()
    isa = "AVX-512 BF16" if "avx512_bf16" in words else "AVX-512, no BF16" if "avx512f" in words else "AVX2 only"
    return f"{name}, {isa}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["building-seg", "building-mtl"])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}\n")
    print(
        "| model | set | scene GSD (m) | model GSD (m) | IoU as is | IoU resampled | object F1 as is | "
        "object F1 resampled | seconds as is / resampled |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        lm = load_model(name, "cpu")
        for key in args.sets:
            dataset, scene_id = SETS[key]
            refs = [r for r in scenes(dataset) if scene_id is None or r.id == scene_id]
            results: dict[bool, list] = {False: [], True: []}
            secs = {False: 0.0, True: 0.0}
            g = t = None
            for ref in refs:
                sample = ref.load()
                g = gsd_metres(sample.transform, sample.crs, *sample.valid.shape)
                t = target_gsd(g, lm.card.input.gsd_range_m)
                for match in (False, True):
                    t0 = time.perf_counter()
                    pred = predict(lm, ref.path, match_gsd=match)
                    secs[match] += time.perf_counter() - t0
                    res = evaluate_sample(lm.card, pred.heads, sample)
                    assert res is not None
                    results[match].append(res)
            a, b = pool(results[False]), pool(results[True])
            of1 = next(k for k in a.values if k.startswith("object_f1"))
            print(
                f"| {name} | {key} ({len(refs)} image{'s' if len(refs) > 1 else ''}) | {g:.3f} | "
                f"{t:.3f} | {a.values['iou']:.3f} | {b.values['iou']:.3f} | {a.values[of1]:.3f} | "
                f"{b.values[of1]:.3f} | {secs[False]:.0f} / {secs[True]:.0f} |"
                if t is not None
                else f"| {name} | {key} | {g:.3f} | (inside the range) | {a.values['iou']:.3f} | — | "
                f"{a.values[of1]:.3f} | — | {secs[False]:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
