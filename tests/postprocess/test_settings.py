"""Post-processing settings are typed on the card and round-trip through card.json."""

import pytest

from rsviz.models.api import BUNDLED_DIR
from rsviz.models.card import ModelCard, postprocess_of, road_graph_of
from rsviz.postprocess import InstanceSettings, RoadGraphSettings


def test_settings_round_trip_and_name_a_bad_key():
    s = RoadGraphSettings.from_dict({"threshold": 0.3, "bridge_px": 45.0})
    assert s == RoadGraphSettings(threshold=0.3, bridge_px=45.0) and RoadGraphSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown instance post-processing setting.*'tresh'.*threshold"):
        InstanceSettings.from_dict({"tresh": 0.5})


def test_old_cards_keep_their_settings_in_the_typed_field(tmp_path):
    if not (BUNDLED_DIR / "roads-pplinknet" / "card.json").exists():
        pytest.skip("roads weights are not bundled")
    card = ModelCard.load(BUNDLED_DIR / "roads-pplinknet" / "card.json")
    assert road_graph_of(card).threshold == 0.3 and "road_graph" not in card.extra
    d = card.to_dict()
    d["extra"]["instance_postprocess"] = {"method": "distance", "min_distance": 40}  # an old card's layout
    del d["postprocess"]["road_graph"]
    d["extra"]["road_graph"] = {"threshold": 0.4}
    old = ModelCard.from_dict(d)
    assert postprocess_of(old).min_distance == 40 and road_graph_of(old).threshold == 0.4
    old.save(tmp_path / "card.json")
    assert ModelCard.load(tmp_path / "card.json").postprocess == old.postprocess
