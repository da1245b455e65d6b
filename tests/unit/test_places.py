import pytest

from newsflow.pipeline.entities import entity_key
from newsflow.pipeline.places import countries_around, countries_named


@pytest.mark.parametrize(
    ("name", "country"),
    [
        ("Australia", "AU"),
        ("United States", "US"),
        ("U.S.", "US"),  # English short names ISO does not list
        ("UK", "GB"),
        ("Russia", "RU"),
        ("Iran", "IR"),  # ISO's common name ("Iran, Islamic Republic of")
        ("Viet Nam", "VN"),
    ],
)
def test_countries_are_known_by_their_names(name, country):
    assert countries_named([entity_key(name)]) == {country}
    assert countries_around([entity_key(name)]) == set()


@pytest.mark.parametrize(
    ("name", "country"),
    [
        ("New South Wales", "AU"),
        ("NSW", "AU"),  # the state's own part of its ISO code, as news abbreviates it
        ("Queensland", "AU"),
        ("California", "US"),
        ("Ontario", "CA"),
        ("Québec", "CA"),
        ("Scotland", "GB"),
    ],
)
def test_states_and_regions_lie_in_their_country(name, country):
    assert countries_around([entity_key(name)]) == {country}
    assert countries_named([entity_key(name)]) == set()


@pytest.mark.parametrize("name", ["Mari Tamm", "Tartu", "CA", "London Borough of Camden"])
def test_other_names_are_no_place_it_knows(name):
    # People, cities, two-letter codes ("CA" is also Canada's initials) and second-level units.
    assert countries_around([entity_key(name)]) == set()
