"""The user model store (rsviz.models.store): a model folder registered, smoke-tested and kept in the workspace;
bad folders refused with the reason, leaving the store as it was."""

from __future__ import annotations

import shutil

import pytest

from rsviz.errors import ModelFolderError
from rsviz.models.api import BUNDLED_DIR, list_models, load_model
from rsviz.models.store import add_model, remove_model, store_dir


def _entries():
    return sorted(p.name for p in store_dir().iterdir())


def test_a_copied_folder_is_registered_and_survives_a_new_lookup(tmp_path):
    src = shutil.copytree(BUNDLED_DIR / "building-seg", tmp_path / "my-buildings")
    m = add_model(src)
    try:
        assert m.name == "my-buildings" and m.runtime == "pytorch" and m.task == "buildings"
        assert m.outputs["classes"] == (64, 64) and (store_dir() / "my-buildings" / "card.json").is_file()
        assert "my-buildings" in list_models()
        assert load_model("my-buildings", "cpu").card.task == "buildings"
        shutil.rmtree(src)  # the store holds its own copy
        assert "my-buildings" in list_models()
        with pytest.raises(ModelFolderError, match="already registered .* or pass replace"):
            add_model(BUNDLED_DIR / "building-seg", "my-buildings")
        assert add_model(BUNDLED_DIR / "building-seg", "my-buildings", replace=True).name == "my-buildings"
    finally:
        remove_model("my-buildings")
    assert "my-buildings" not in list_models()


def test_bad_model_folders_are_refused_and_leave_nothing(tmp_path):
    before = _entries()
    with pytest.raises(ModelFolderError, match="is not a model folder: it needs card.json and config.json"):
        add_model(tmp_path)
    with pytest.raises(ModelFolderError, match="already registered"):
        add_model(BUNDLED_DIR / "building-seg")  # a bundled name is never replaced
    broken = shutil.copytree(BUNDLED_DIR / "building-seg", tmp_path / "broken")
    w = broken / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(ModelFolderError, match="truncated or corrupt"):
        add_model(broken)
    with pytest.raises(ModelFolderError, match="is not allowed"):
        add_model(BUNDLED_DIR / "building-seg", "../escape")
    bad_mlm = shutil.copytree(BUNDLED_DIR / "building-seg", tmp_path / "bad-mlm")
    (bad_mlm / "mlm.json").write_text('{"properties": {"mlm:name": 3}}')
    with pytest.raises(ModelFolderError, match="invalid MLM descriptor: mlm:"):
        add_model(bad_mlm)
    assert _entries() == before and "broken" not in list_models()


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(monkeypatch):
    import io

    from rsviz.models import store
    from rsviz.models.store import add_upload

    before = _entries()
    monkeypatch.setattr(store, "MAX_FOLDER_BYTES", 10)
    for data in (b"x" * 11, io.BytesIO(b"x" * 11)):
        with pytest.raises(ModelFolderError, match="is over .* GB, the largest model the store takes"):
            add_upload("big.zip", data)
    assert _entries() == before
