"""Out-of-domain figures of the cross-validation fold models, one row per recipe stage (issue #23).

``python scripts/eval_ood_cv.py runs/cv/base runs/cv/scale runs/cv/scale-grey [--sets tanzania austin joplin]``

Each CV folder (``experiments.cv``) holds one model per fold, each trained at the CV budget on the other
three folds of the 64 labelled Banepa and Kampala train + val chips (44-52 chips, the folds being unequal).
Every fold model is written as a model folder with the bundled ``building-mtl`` card (its post-processing, TTA setting and GSD range; :func:`rsviz.models.api.save_pretrained`)
and predicts the out-of-domain scenes of ``scripts/eval_gsd.py`` as is and resampled to the model's GSD
(Joplin: as is only; its resampled run costs 11x the pixels). A stage's figure pools the counts of its fold
models over the set's images (every fold model scores every image), and the min-max over the fold models is
given beside it. Test-only sets: nothing is chosen on them. Prints a Markdown table with the CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from eval_gsd import SETS, cpu_name
from safetensors.torch import load_file

from rsviz.datasets import scenes
from rsviz.evaluation import evaluate_sample, pool
from rsviz.inference import predict
from rsviz.models.api import from_pretrained, load_model, save_pretrained
from rsviz.models.architectures import build_model


def fold_models(cv_dir: Path, scratch: Path) -> list[Path]:
    """Model folders (bundled building-mtl card, the fold's weights) of every ``fold*`` run in ``cv_dir``."""
    card = load_model("building-mtl", "cpu").card
    out = []
    for run in sorted(cv_dir.glob("fold*")):
        cfg = json.loads((run / "config.json").read_text())
        net = build_model(cfg)
        net.load_state_dict(load_file(str(run / "best.safetensors")))
        out.append(save_pretrained(net, cfg, card, scratch / cv_dir.name / run.name))
    return out


def _figures(results: list) -> tuple[float, float]:
    r = pool(results)
    of1 = next(k for k in r.values if k.startswith("object_f1"))
    return r.values["iou"], r.values[of1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cv_dirs", nargs="+", type=Path)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = ap.parse_args()
    print(f"CPU: {cpu_name()}\n")
    print("| stage | set | IoU as is | IoU resampled | object F1 as is | object F1 resampled |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for cv_dir in args.cv_dirs:
            models = [from_pretrained(p, "cpu") for p in fold_models(cv_dir, Path(tmp))]
            for key in args.sets:
                dataset, scene_id = SETS[key]
                refs = [r for r in scenes(dataset) if scene_id is None or r.id == scene_id]
                samples = [r.load() for r in refs]  # ground truth read once, scored by every model and mode
                modes = (False,) if key == "joplin" else (False, True)
                cells = {}
                for match in modes:
                    per_model = []
                    for lm in models:
                        res = []
                        for ref, sample in zip(refs, samples, strict=True):
                            pred = predict(lm, ref.path, match_gsd=match)
                            r = evaluate_sample(lm.card, pred.heads, sample)
                            assert r is not None
                            res.append(r)
                        per_model.append(res)
                    pooled = _figures([r for res in per_model for r in res])
                    each = [_figures(res) for res in per_model]
                    cells[match] = [
                        f"{pooled[i]:.3f} ({min(e[i] for e in each):.3f}-{max(e[i] for e in each):.3f})" for i in (0, 1)
                    ]
                resampled = cells.get(True, ["—", "—"])
                print(
                    f"| {cv_dir.name} | {key} | {cells[False][0]} | {resampled[0]} | {cells[False][1]} | "
                    f"{resampled[1]} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
