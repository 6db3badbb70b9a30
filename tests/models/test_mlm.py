"""MLM STAC items of the bundled models: written by stac-model, read back into what the card says."""

from __future__ import annotations

import json

import pytest

from rsviz.errors import ModelFolderError
from rsviz.models.api import BUNDLED_DIR, get_model_card
from rsviz.models.mlm import read_mlm, write_mlm


@pytest.mark.parametrize("name", ["building-mtl", "landcover-deeplabv3plus", "height-mtl"])
def test_written_item_reads_back_as_the_card(tmp_path, name):
    card = get_model_card(name)
    s = read_mlm(write_mlm(card, tmp_path))
    assert s.bands == tuple(card.input.bands)
    assert s.input_shape == (-1, card.in_channels, card.input.tile_size, card.input.tile_size)
    assert s.value_scaling[0] == pytest.approx(
        (card.input.mean[0] * card.input.scale, card.input.std[0] * card.input.scale)
    )
    assert [c.color for c in s.classes] == [tuple(c.color) for c in card.classes]
    assert s.gsd_range_m == tuple(card.input.gsd_range_m)
    assert dict(s.outputs)["seg"] == card.heads["seg"].channels


def test_bundled_items_are_current():
    for d in sorted(BUNDLED_DIR.iterdir()):
        if (d / "card.json").exists():
            assert read_mlm(d / "mlm.json").name == d.name


def test_invalid_field_is_named_with_its_value(tmp_path):
    p = write_mlm(get_model_card("building-seg"), tmp_path)
    item = json.loads(p.read_text())
    item["properties"]["mlm:input"][0]["input"]["shape"] = ["tile", 3]
    p.write_text(json.dumps(item))
    with pytest.raises(ModelFolderError, match=r"mlm:input\[0\]\.input\.shape\[0\].*'tile'"):
        read_mlm(p)


def _core_errors(item: dict) -> list[str]:
    """Errors of ``item`` against the STAC core item schema that pystac ships (validated offline)."""
    from pystac.validation.local_validator import LocalValidator

    return [e.message for e in LocalValidator().item_validator(item["stac_version"]).iter_errors(item)]


@pytest.mark.parametrize("name", sorted(d.name for d in BUNDLED_DIR.iterdir() if (d / "card.json").exists()))
def test_bundled_items_validate_as_stac_items_and_as_mlm(name):
    """The MLM JSON schema itself ships with neither stac-model 0.7.0 nor pystac (both point at
    stac-extensions.github.io), so an offline test checks the STAC core item schema pystac bundles plus
    stac-model's pydantic model of the MLM fields (read_mlm), and that every extension used is listed."""
    item = json.loads((BUNDLED_DIR / name / "mlm.json").read_text())
    assert _core_errors(item) == []
    s = read_mlm(BUNDLED_DIR / name / "mlm.json")
    assert s.outputs and s.bands == tuple(get_model_card(name).input.bands)
    used = {k.split(":")[0] for o in item["properties"]["mlm:output"] for k in o if ":" in k}
    assert {"https://stac-extensions.github.io/mlm/v1.6.0/schema.json"} <= set(item["stac_extensions"])
    assert ("classification" in used) == any("classification/" in u for u in item["stac_extensions"])
    broken = dict(item, properties={k: v for k, v in item["properties"].items() if k != "end_datetime"})
    assert _core_errors(broken)  # the core check can fail: start_datetime without end_datetime
