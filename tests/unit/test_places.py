import pytest

from newsflow.pipeline.entities import entity_key
from newsflow.pipeline.places import countries_around, countries_named, name_one_place


@pytest.mark.parametrize(
    ("a", "b", "one_place"),
    [
        (["Australia"], ["New South Wales"], True),
        (["Australia"], ["NSW"], True),  # the state's own ISO code part, as news abbreviates it
        (["Queensland"], ["Australia"], True),
        (["Ontario"], ["Canada"], True),
        (["United States"], ["California"], True),
        (["U.S."], ["California"], True),
        (["UK"], ["Scotland"], True),
        (["California"], ["Texas"], False),  # two states of one country
        (["Germany"], ["NSW"], False),
        (["Australia"], ["Australia"], False),  # equal names are the keys' business, not containment's
        (["Mari Tamm"], ["Tartu"], False),
    ],
)
def test_a_country_and_its_regions_name_one_place(a, b, one_place):
    a_keys, b_keys = [entity_key(n) for n in a], [entity_key(n) for n in b]
    assert name_one_place(a_keys, b_keys) is one_place
    assert name_one_place(b_keys, a_keys) is one_place


def test_lookups_know_countries_by_their_common_names_and_regions_by_name():
    assert countries_named([entity_key("Russia"), entity_key("Iran"), entity_key("Viet Nam")]) == {
        "RU",
        "IR",
        "VN",
    }
    assert countries_around([entity_key("Québec")]) == {"CA"}
    assert countries_around(["london borough of camden"]) == set()  # below the first level
