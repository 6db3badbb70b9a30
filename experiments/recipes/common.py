"""Shared training utilities: seeding, augmentation, curves (CSV + PNG)."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsviz.models.card import InputSpec

#: Per-band mean / std of the RGB recipes after scaling to [0, 1]: the card input spec's defaults
#: (:class:`rsviz.models.card.InputSpec`), so training normalises exactly as inference does.
_RGB_SPEC = InputSpec(bands=["red", "green", "blue"])
MEAN = np.array(_RGB_SPEC.mean, np.float32)[:, None, None]
STD = np.array(_RGB_SPEC.std, np.float32)[:, None, None]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for data sampling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def load_config(
    path: str | os.PathLike | None, defaults: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Read a JSON training config over ``defaults``, then ``overrides`` over it.

    Raises:
        ValueError: If the config or the overrides hold a key that ``defaults`` lacks (the message names it).
    """
    cfg = dict(defaults)
    user = json.loads(Path(path).read_text(encoding="utf-8")) if path else {}
    for what, d in (("config keys", user), ("recipe setting(s)", overrides or {})):
        unknown = set(d) - set(defaults)
        if unknown:
            raise ValueError(f"unknown {what} {sorted(unknown)}; valid: {sorted(defaults)}")
        cfg.update(d)
    return cfg


def start_run(config_path: str | os.PathLike | None, defaults: dict[str, Any], overrides: dict[str, Any] | None = None):
    """Common start of a training run.

    Loads the config over ``defaults`` and ``overrides``, sets the CPU thread count, seeds
    everything, resolves the device (CUDA when available for ``"auto"``) and creates the
    output folder.

    Returns:
        ``(cfg, rng, device, out_dir)``.
    """
    from rsviz.models.api import resolve_device

    cfg = load_config(config_path, defaults, overrides)
    torch.set_num_threads(int(cfg.get("threads", torch.get_num_threads())))
    rng = seed_everything(int(cfg["seed"]))
    device = resolve_device(cfg.get("device", "auto"))
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    return cfg, rng, device, out


def mtl_unet_arch(cfg: dict[str, Any], heads: dict[str, int] | None = None) -> dict[str, Any]:
    """The ``config.json`` of an RGB ``mtl_unet`` run (:func:`rsviz.models.architectures.build_model`) from a
    recipe's ``encoder_name`` and ``decoder_channels``, with ``heads`` (default ``cfg["heads"]``)."""
    return {
        "arch": "mtl_unet",
        "encoder_name": cfg["encoder_name"],
        "in_channels": 3,
        "heads": dict(cfg["heads"] if heads is None else heads),
        "decoder_channels": cfg["decoder_channels"],
    }


def write_run_configs(out: Path, cfg: dict[str, Any], arch: dict[str, Any]) -> None:
    """Write a run's ``train_config.json`` (the recipe as run) and ``config.json`` (the architecture)."""
    (out / "train_config.json").write_text(json.dumps(cfg, indent=2))
    (out / "config.json").write_text(json.dumps(arch, indent=2))


def load_init(net: torch.nn.Module, path: str | os.PathLike | None) -> torch.nn.Module:
    """Load an earlier run's ``best.safetensors`` into ``net`` (same architecture) to fine-tune it.

    ``path`` may also be a bundled ``weights/<name>/model.safetensors``: stored half-precision tensors
    are cast to float32 and int8 weights dequantised (:func:`rsviz.models.api.dequantize_state`).
    ``path`` None or empty leaves ``net`` as built.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
    """
    if path:
        from safetensors.torch import load_file

        from rsviz.models.api import dequantize_state

        net.load_state_dict(dequantize_state(load_file(str(path))))
    return net


def _precision_of(cfg: dict[str, Any]) -> str:
    # runs whose summary predates the "precision" field: recipes without the key ran in fp32; "auto"
    # ran under bf16 autocast on the CPUs these runs used (native bf16)
    return "bf16 autocast" if cfg.get("precision") in ("auto", "bf16") else "fp32"


def training_stages(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The training stages behind a run, oldest first, following each stage's ``init`` weights back.

    Each stage reads the run folder's ``train_config.json`` and ``summary.json``: ``{"stage", "run",
    "recipe", "steps", "wall_s", "precision", "best_step", ...best_val_* scores}``. A run trained from
    scratch is one stage; a missing folder ends the chain. A stage fine-tuned from bundled weights
    (``init`` inside a ``weights/<name>/`` folder) takes the earlier stages from that folder's
    ``card.json`` (``extra.training_stages``), up to the first stage that is already in the chain (the
    folder may since hold weights bundled from a later run of the same chain).
    """
    stages: list[dict[str, Any]] = []
    run: Path | None = Path(run_dir)
    while run is not None and (run / "train_config.json").exists() and len(stages) < 20:
        cfg = json.loads((run / "train_config.json").read_text())
        summ = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        stages.append(
            {
                "run": run.name,
                "recipe": cfg,
                "steps": cfg.get("steps"),
                "wall_s": summ.get("wall_s"),
                "precision": summ.get("precision") or _precision_of(cfg),
                "best_step": summ.get("best_step"),
                **{k: v for k, v in summ.items() if k.startswith("best_val")},
            }
        )
        run = Path(cfg["init"]).parent if cfg.get("init") else None
    if run is not None and not (run / "train_config.json").exists() and (run / "card.json").exists():
        earlier = json.loads((run / "card.json").read_text()).get("extra", {}).get("training_stages") or []
        # the card may already describe runs of this chain (weights bundled from a later stage since):
        # keep only the stages before the first of them
        seen = {st["run"] for st in stages}
        cut = next((i for i, st in enumerate(earlier) if st.get("run") in seen), len(earlier))
        stages.extend(reversed([{k: v for k, v in st.items() if k != "stage"} for st in earlier[:cut]]))
    stages.reverse()
    for i, st in enumerate(stages, 1):
        st["stage"] = i
    return stages


def init_log_vars(init: str | os.PathLike | None) -> dict[str, float] | None:
    """Learned Kendall log-variances ``s`` that belong to the ``init`` weights of a fine-tuning stage.

    Read from ``summary.json`` (``log_vars``, saved with the best checkpoint) beside a run's
    ``best.safetensors``, or from ``card.json`` (``extra.learned_log_variances_s``) beside bundled
    weights; None when neither records them (training from scratch, or a single-task run).
    """
    if not init:
        return None
    d = Path(init).parent
    if (d / "summary.json").exists():
        return json.loads((d / "summary.json").read_text()).get("log_vars") or None
    if (d / "card.json").exists():
        return json.loads((d / "card.json").read_text()).get("extra", {}).get("learned_log_variances_s") or None
    return None


def tta_note(tta: bool, chosen_by: str) -> str:
    """The model-card sentence that states a packager's test-time augmentation choice (``extra.tta_note``).

    Args:
        tta: Whether the card turns TTA on (``input.tta``).
        chosen_by: How it was chosen, e.g. ``"by the val score"``.
    """
    return (
        "test-time augmentation (mean of the 8 flips / 90-degree rotations) is "
        + ("on" if tta else "off")
        + f" in this card's input.tta, chosen {chosen_by}; every metric above was measured with that setting"
    )


def augment(
    img: np.ndarray, targets: list[np.ndarray], rng: np.random.Generator, colour: float = 0.2, grey: float = 0.0
):
    """Random flip / rot90 (image and targets alike), colour jitter and grey conversion (image only).

    Args:
        img: ``(C, H, W)`` float32 in [0, 1].
        targets: list of ``(H, W)`` arrays.
        rng: NumPy generator.
        colour: Max relative brightness / contrast / saturation change.
        grey: Probability of replacing the first three bands (RGB) by their luma (ITU-R BT.601 weights),
            as a panchromatic image would look; 0 draws nothing from ``rng`` (earlier runs replay).

    Returns:
        ``(img, targets)`` augmented copies.
    """
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))

    def geo(a):
        a = np.rot90(a, k, axes=(-2, -1))
        return a[..., ::-1] if flip else a

    img = geo(img)
    targets = [np.ascontiguousarray(geo(t)) for t in targets]
    if colour > 0:
        b = 1 + rng.uniform(-colour, colour)
        c = 1 + rng.uniform(-colour, colour)
        s = 1 + rng.uniform(-colour, colour)
        mean = img.mean()
        img = (img - mean) * c + mean * b
        if img.shape[0] >= 3:
            g = img[:3].mean(0, keepdims=True)
            img[:3] = g + (img[:3] - g) * s
        img = np.clip(img, 0, 1)
    if grey > 0 and img.shape[0] >= 3 and rng.random() < grey:
        img = np.array(img, dtype=np.float32)
        img[:3] = np.tensordot(LUMA, img[:3], axes=1)[None]
    return np.ascontiguousarray(img, dtype=np.float32), targets


#: ITU-R BT.601 luma weights of R, G, B
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A factor drawn log-uniformly from ``[lo, hi]`` (as likely to halve as to double)."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def scaled_crop(
    img: np.ndarray, layers: list[np.ndarray], crop: int, factor: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """A random window of ``img`` rescaled by ``factor`` into a ``crop x crop`` training crop.

    ``factor`` < 1 zooms out (a coarser GSD: a window of ``crop / factor`` pixels shrinks into the crop),
    > 1 zooms in. When the window would exceed the image, the whole image side is taken and the crop is
    padded; ``inside`` marks the pixels that come from the image.

    Args:
        img: ``(C, H, W)`` float32 image in [0, 1].
        layers: ``(H, W)`` label layers (class or instance ids), resampled nearest.
        crop: Output side in pixels.
        factor: Scale factor in (0, inf), e.g. from :func:`log_uniform` over ``[0.25, 2]``.
        rng: NumPy generator (window position).

    Returns:
        ``(img, layers, inside)``: ``(C, crop, crop)`` float32 (bilinear, antialiased when shrinking; padding
        reflected, the edge pixel repeated when the window is too thin to reflect), ``(crop, crop)`` layers in
        their dtypes (padding 0) and ``(crop, crop)`` bool.
    """
    import torch
    from torch.nn import functional as F

    _, h, w = img.shape
    win = max(1, round(crop / factor))
    wh, ww = min(win, h), min(win, w)
    r0, c0 = int(rng.integers(h - wh + 1)), int(rng.integers(w - ww + 1))
    oh, ow = min(crop, max(2, round(wh * factor))), min(crop, max(2, round(ww * factor)))
    x = torch.from_numpy(np.ascontiguousarray(img[:, r0 : r0 + wh, c0 : c0 + ww]))[None]
    x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=factor < 1)[0].numpy()
    pad = ((0, crop - oh), (0, crop - ow))
    out_img = np.pad(x, ((0, 0), *pad), mode="reflect" if oh > crop - oh and ow > crop - ow else "edge")
    out_layers = []
    for a in layers:
        t = torch.from_numpy(np.ascontiguousarray(a[r0 : r0 + wh, c0 : c0 + ww]).astype(np.float32))[None, None]
        r = F.interpolate(t, size=(oh, ow), mode="nearest-exact")[0, 0].numpy().astype(a.dtype)
        out_layers.append(np.pad(r, pad))
    inside = np.pad(np.ones((oh, ow), bool), pad)
    return np.ascontiguousarray(out_img, dtype=np.float32), out_layers, inside


class CurveLogger:
    """Append rows to ``curves.csv`` and plot them to ``curves.png``."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / "curves.csv"
        self.rows: list[dict[str, float]] = []

    def log(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)

    @classmethod
    def from_csv(cls, path: Path) -> CurveLogger:
        """Re-open a ``curves.csv`` (e.g. to re-plot it)."""
        log = cls(path.parent)
        with open(path, newline="") as f:
            log.rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
        log.path = path
        return log

    def plot(self) -> Path:
        """Write ``curves.png`` (train losses left, validation metrics right); returns its path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        keys = list(dict.fromkeys(k for r in self.rows for k in r if k != "step" and not k.startswith("elapsed")))
        for k in keys:
            pts = [(r["step"], r[k]) for r in self.rows if k in r and r[k] == r[k]]
            if not pts:
                continue
            ax = b if k.startswith("val_") else a
            ax.plot(*zip(*pts, strict=False), label=k)
        a.set_xlabel("step"), a.set_title("training losses / task weights"), a.legend(fontsize=7), a.set_yscale("log")
        b.set_xlabel("step"), b.set_title("validation")
        if b.lines:
            b.legend(fontsize=7)
        fig.tight_layout()
        out = self.path.with_suffix(".png")
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out


def mixed_precision(device: torch.device, precision: str = "auto"):
    """Autocast context for a training step and whether to use channels_last.

    ``auto`` trains with bf16 autocast (weights and optimizer state stay fp32) on CUDA and on
    CPUs with native bf16 (oneDNN AVX512-BF16 / AMX), where it is about 3x faster than fp32
    for the bundled U-Net; fp32 elsewhere. fp16 on GPUs without bf16 is not used for
    training (it would need a gradient scaler).

    Returns:
        ``(context_factory, channels_last)``: call ``context_factory()`` around the forward
        pass and loss.
    """
    import contextlib

    from rsviz.inference.engine import resolve_precision

    dtype = resolve_precision(precision, device)
    if dtype is not torch.bfloat16:
        return contextlib.nullcontext, False
    return (lambda: torch.autocast(device.type, dtype=torch.bfloat16)), True


def optimise(
    opt: torch.optim.Optimizer, sched, loss: torch.Tensor, losses: dict[str, torch.Tensor], running: dict[str, float]
) -> None:
    """One optimiser step on ``loss`` (zero grads, backward, step, scheduler step), adding each
    task loss in ``losses`` to the ``running`` sums logged at the next validation."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    for k, v in losses.items():
        running[k] = running.get(k, 0.0) + float(v.detach())


def save_weights(net: torch.nn.Module, path: Path) -> None:
    """Write ``net``'s state dict (fp32, CPU) as safetensors: a run's ``best.safetensors``."""
    from safetensors.torch import save_file

    save_file({k: t.detach().cpu().contiguous() for k, t in net.state_dict().items()}, str(path))


#: Keys of a recipe's ``swa`` setting (stochastic weight averaging); None in a recipe turns it off.
SWA_KEYS = ("start", "every", "bn_batches")


class WeightAverage:
    """Stochastic weight averaging of one training run (Izmailov et al., "Averaging Weights Leads to Wider
    Optima and Better Generalization", UAI 2018).

    From step ``start`` on, every ``every`` steps, the running mean of the network's parameters is updated
    (:class:`torch.optim.swa_utils.AveragedModel`); the recipe keeps its learning rate constant meanwhile
    (:func:`swa_lr_lambda`). :meth:`finish` then recomputes the batch-norm statistics of the averaged weights
    on training batches (:func:`torch.optim.swa_utils.update_bn`), since averaged weights do not match any
    snapshot's running statistics. The averaged network is the run's output, chosen without looking at val.

    Args:
        net: The network being trained (its weights are copied; it is not modified).
        cfg: ``{"start": int >= 1, "every": int >= 1, "bn_batches": int >= 1}`` (:data:`SWA_KEYS`).

    Raises:
        ValueError: If a key is missing or unknown, or a value is below 1.
    """

    def __init__(self, net: torch.nn.Module, cfg: dict[str, Any]) -> None:
        if set(cfg) != set(SWA_KEYS) or any(int(cfg[k]) < 1 for k in SWA_KEYS):
            raise ValueError(f"swa needs exactly the keys {list(SWA_KEYS)}, each an integer >= 1; got {cfg}")
        from torch.optim.swa_utils import AveragedModel

        self.start, self.every, self.bn_batches = (int(cfg[k]) for k in SWA_KEYS)
        self.model = AveragedModel(net)
        self.steps: list[int] = []

    def update(self, net: torch.nn.Module, step: int) -> bool:
        """Add ``net``'s current weights to the mean when ``step`` is due; returns whether it was."""
        if step < self.start or (step - self.start) % self.every:
            return False
        self.model.update_parameters(net)
        self.steps.append(step)
        return True

    def finish(self, batches, device: torch.device) -> torch.nn.Module:
        """Recompute batch-norm statistics on ``batches`` (an iterable of input tensors ``(B, C, H, W)``,
        normalised as in training) and return the averaged network (in eval mode).

        Raises:
            RuntimeError: If no snapshot was averaged (the run ended before ``start``).
        """
        if not self.steps:
            raise RuntimeError(f"no weights were averaged: the run ended before swa start step {self.start}")
        from torch.optim.swa_utils import update_bn

        net = self.model.module
        with torch.no_grad():
            update_bn((x.to(device) for x in batches), net)
        return net.eval()

    def summary(self) -> dict[str, Any]:
        """``{"snapshots", "first_step", "last_step", "every", "bn_batches"}`` for the run's ``summary.json``."""
        return {
            "snapshots": len(self.steps),
            "first_step": self.steps[0] if self.steps else None,
            "last_step": self.steps[-1] if self.steps else None,
            "every": self.every,
            "bn_batches": self.bn_batches,
        }


def swa_lr_lambda(warmup: int):
    """Learning-rate factor of a weight-averaged run: linear warm-up over ``warmup`` steps, then constant 1
    (the constant schedule of Izmailov et al. 2018, for fine-tuning stages that start near a minimum)."""
    return lambda s: min(1.0, (s + 1) / max(int(warmup), 1))
