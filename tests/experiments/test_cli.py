"""The experiment commands reach the rsviz CLI through entry points; promote enforces the selection rule."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from rsviz.cli import build_parser
from rsviz.models.api import BUNDLED_DIR


def test_every_command_is_under_one_cli():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"data", "models", "predict", "evaluate", "train", "package", "cv", "select", "promote"} <= set(sub.choices)


def test_console_script_and_module_are_the_same_program():
    a = subprocess.run(["rsviz", "--help"], capture_output=True, text=True)
    b = subprocess.run([sys.executable, "-m", "rsviz", "--help"], capture_output=True, text=True)
    assert a.returncode == b.returncode == 0 and "promote" in a.stdout and a.stdout == b.stdout


def test_cv_run_needs_out_and_key_value_overrides(capsys):
    from rsviz.cli import main

    with pytest.raises(SystemExit) as e:
        main(["cv", "run", "experiments/configs/building-mtl.json"])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["cv", "run", "experiments/configs/building-mtl.json", "--out", "runs/x", "--set", "steps"])
    assert e.value.code == 2 and "KEY=VALUE, got 'steps'" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["building", "semantic", "height", "s2", "refresh"])
def test_every_packager_requires_out(kind, capsys):
    from rsviz.cli import main

    with pytest.raises(SystemExit) as e:
        main(["package", kind, "runs/nothing"])
    assert e.value.code == 2 and "--out" in capsys.readouterr().err


def test_promote_takes_identical_weights_refuses_a_loser_and_adds_a_new_name(tmp_path, monkeypatch):
    import experiments.selection as sel
    from experiments.cli import PromotionRefused, promote

    if not (BUNDLED_DIR / "building-seg" / "card.json").exists():
        pytest.skip("building-seg weights are not bundled")
    store = tmp_path / "weights"
    shutil.copytree(BUNDLED_DIR / "building-seg", store / "building-seg")
    same = shutil.copytree(BUNDLED_DIR / "building-seg", tmp_path / "cand" / "building-seg")
    (same / "README.md").write_text("re-measured")
    assert promote(same, store)["metrics_refresh"] is True
    assert (store / "building-seg" / "README.md").read_text() == "re-measured"

    other = shutil.copytree(BUNDLED_DIR / "building-seg", tmp_path / "other" / "building-seg")
    (other / "config.json").write_text((other / "config.json").read_text().replace("{", "{ ", 1))
    monkeypatch.setattr(
        sel,
        "compare",
        lambda a, b: {
            "statistic": "val object F1",
            "bundled": 0.5,
            "candidate": 0.51,
            "p_better": 0.6,
            "replace": False,
            "replace_p": 0.9,
        },
    )
    before = (store / "building-seg" / "config.json").read_text()
    with pytest.raises(PromotionRefused, match="P\\(better\\) 0.600 < 0.9"):
        promote(other, store)
    assert (store / "building-seg" / "config.json").read_text() == before  # nothing written
    assert promote(other, store, name="building-seg-v2") == {"new": True}
    assert (store / "building-seg-v2" / "card.json").exists()
