"""config: profiles carry what differs between them as fields; Schedule parsing."""

import pytest

from redestyle import config, zoo
from redestyle.config import PROFILES, Profile, Schedule, get_profile


def test_profiles_differ_by_fields_not_names():
    assert {n: (p.weights, p.needs_weights, p.samples, p.baseline_style) for n, p in PROFILES.items()} == {
        "tiny": ("random", False, "photos", "tiny"),
        "mini": ("shipped", False, "world", "portrait"),
        "ffhq1024": ("official", True, "photos", "cartoon"),
    }
    assert zoo.default_style("mini") == zoo.MINI_STYLE == "portrait"


def test_get_profile_normalises_names_and_profiles():
    assert get_profile("tiny") is PROFILES["tiny"] and get_profile(PROFILES["mini"]) is PROFILES["mini"]
    with pytest.raises(ValueError, match="unknown profile 'huge'; known: tiny, mini, ffhq1024"):
        get_profile("huge")


def test_profile_fields_are_checked():
    tiny = PROFILES["tiny"]
    with pytest.raises(ValueError, match="Profile.weights must be one of"):
        Profile("x", tiny.generator, tiny.encoder, weights="downloaded")


def test_schedule_is_torch_free_and_round_trips():
    assert "torch" not in config.__dict__
    assert str(Schedule.parse("(6, 4, 2)")) == "6-4-2" and Schedule.parse(Schedule((1,))) == Schedule((1,))
