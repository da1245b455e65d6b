"""The stories view without Kafka: records folded into the store, answered by the HTTP app."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from newsflow.web.service import build_app
from newsflow.web.store import BadQuery, StoryQuery, StoryStore


def enriched(article_id: str, story_id: str, outlet: str, minute: int, **extra: Any) -> dict[str, Any]:
    return {
        "article_id": article_id,
        "story_id": story_id,
        "source": {"outlet": outlet},
        "title": f"title of {article_id}",
        "url": f"https://{outlet}/{article_id}",
        "published": None,
        "language": {"code": extra.pop("lang", "en"), "confidence": 0.99},
        "description": f"about {article_id}",
        "text": f"text of {article_id}",
        "duplicate_of": extra.pop("duplicate_of", None),
        "processed_at": f"2026-12-01T10:{minute:02d}:00Z",
        "entities": extra.pop("entities", []),
        **extra,
    }


def story(story_id: str, members: list[str], outlets: list[str], minute: int, **extra: Any) -> dict[str, Any]:
    return {
        "story_id": story_id,
        "headline": f"headline of {story_id}",
        "first_seen": "2026-12-01T09:00:00Z",
        "last_seen": f"2026-12-01T10:{minute:02d}:00Z",
        "version": len(members),
        "member_count": len(members),
        "members": members,
        "outlets": outlets,
        "top_entities": extra.pop("top_entities", []),
        "updated_at": f"2026-12-01T10:{minute:02d}:00Z",
        "status": extra.pop("status", "open"),
        **extra,
    }


def entity(key: str, label: str = "GPE") -> dict[str, Any]:
    return {"key": key, "name": key.title(), "label": label}


@pytest.fixture
def store() -> StoryStore:
    s = StoryStore()
    ukraine = [entity("ukraine"), entity("kursk")]
    s.apply(
        [
            ("enriched", enriched("a1", "s1", "wire.example", 1, entities=ukraine)),
            ("story", story("s1", ["a1"], ["wire.example"], 1)),
            ("enriched", enriched("a2", "s1", "daily.example", 2, entities=ukraine)),
            ("enriched", enriched("a3", "s1", "copycat.example", 3, duplicate_of="a1")),
            (
                "story",
                story("s1", ["a1", "a2", "a3"], ["wire.example", "daily.example", "copycat.example"], 3),
            ),
            ("enriched", enriched("b1", "s2", "daily.example", 4, lang="de", entities=[entity("berlin")])),
            ("story", story("s2", ["b1"], ["daily.example"], 4)),
        ],
        {("enriched", 0): 4, ("stories", 0): 3},
    )
    return s


def test_stories_come_newest_first_with_filters(store: StoryStore):
    page, cursor = store.stories(StoryQuery())
    assert [s["story_id"] for s in page] == ["s2", "s1"] and cursor is None
    assert page[1]["member_count"] == 3 and page[1]["outlets"][0] == "wire.example"
    assert [s["story_id"] for s in store.stories(StoryQuery(entity="Kursk"))[0]] == ["s1"]
    assert [s["story_id"] for s in store.stories(StoryQuery(outlet="wire.example"))[0]] == ["s1"]
    assert [s["story_id"] for s in store.stories(StoryQuery(lang="de"))[0]] == ["s2"]
    assert [s["story_id"] for s in store.stories(StoryQuery(lang="DE"))[0]] == ["s2"]  # any case
    assert [s["story_id"] for s in store.stories(StoryQuery(min_outlets=2))[0]] == ["s1"]
    assert [s["story_id"] for s in store.stories(StoryQuery(since="2026-12-01T10:04:00Z"))[0]] == ["s2"]
    assert store.stories(StoryQuery(until="2026-12-01T08:00:00Z"))[0] == []
    assert store.offsets() == {("enriched", 0): 4, ("stories", 0): 3}


def test_an_older_story_record_does_not_undo_a_newer_one(store: StoryStore):
    store.apply([("story", story("s1", ["a1"], ["wire.example"], 1))])
    assert store.story("s1")["member_count"] == 3  # type: ignore[index]


def test_a_story_holds_every_member_and_its_copies(store: StoryStore):
    s = store.story("s1")
    assert s is not None
    assert [m["article_id"] for m in s["members"]] == ["a1", "a2", "a3"]
    assert s["members"][2]["copy_of"] == "a1"
    assert {e["key"]: e["articles"] for e in s["entities"]} == {"kursk": 2, "ukraine": 2}
    assert store.story("nope") is None
    assert store.article("a2")["title"] == "title of a2"  # type: ignore[index]


def test_the_view_forgets_stories_and_articles_not_written_since_its_retention(store: StoryStore):
    # s1 was last updated at 10:03 and s2 at 10:04; an article of no story record (x1) at 10:05;
    # a page with no text (no story at all) at 10:00.
    store.apply([("enriched", enriched("x1", "s9", "wire.example", 5, entities=[entity("oslo")]))])
    store.apply([("enriched", {**enriched("e1", "", "wire.example", 0), "story_id": None})])
    assert store.prune("2026-12-01T10:04:00Z") == (4, None)  # e1, a1, a2, a3 with s1; s2, x1 newer
    assert store.article("e1") is None
    assert store.story("s1") is None and store.article("a2") is None
    assert [s["story_id"] for s in store.stories(StoryQuery())[0]] == ["s2"]
    assert [e["key"] for e in store.entities("k")] == []  # kursk went with its articles
    assert store.counts() == {"stories": 1, "articles": 2}
    # An old article of a story updated since is kept with it (the story page lists it).
    store.apply([("story", story("s2", ["b1", "b2"], ["daily.example"], 30))])
    assert store.prune("2026-12-01T10:20:00Z") == (1, None)  # x1 only: b1 belongs to s2, updated at 10:30
    assert store.story("s2") is not None and store.article("b1") is not None
    # In batches: each call deletes at most `limit` articles, and says where the next goes on.
    store.apply([("enriched", enriched(f"c{i}", "s2", "wire.example", 40 + i)) for i in range(3)])
    assert store.prune("2026-12-01T11:00:00Z", limit=2) == (2, ("2026-12-01T10:40:00Z", 5))
    assert store.story("s2") is not None  # not before all its articles went
    deleted, cursor = store.prune("2026-12-01T11:00:00Z", 2, ("2026-12-01T10:40:00Z", 5))
    assert deleted == 2 and store.story("s2") is not None  # a full batch: there may be more
    assert store.prune("2026-12-01T11:00:00Z", 2, cursor) == (0, None)
    assert store.counts() == {"stories": 0, "articles": 0}


def test_the_retention_keeps_the_stories_merged_into_or_split_from_a_story_still_updated():
    store = StoryStore()
    store.apply(
        [
            ("enriched", enriched("a1", "A", "wire.example", 1)),
            ("story", story("A", ["a1"], ["wire.example"], 1)),
            ("enriched", enriched("b1", "B", "daily.example", 2)),
            ("story", story("B", ["b1"], ["daily.example"], 2)),
            # A merges into B at 10:03, B splits C off at 10:04; B is updated again at 10:50.
            ("story", story("A", ["a1"], ["wire.example"], 3, merged_into="B", status="merged")),
            ("story", story("B", ["b1", "a1"], ["daily.example", "wire.example"], 3, merged_from=["A"])),
            ("story", story("C", ["b1"], ["daily.example"], 4, split_from="B")),
            ("enriched", enriched("b2", "B", "daily.example", 50)),
            ("story", story("B", ["a1", "b2"], ["daily.example", "wire.example"], 50)),
            ("enriched", {**enriched("e1", "", "wire.example", 0), "story_id": None}),  # no story
        ]
    )
    assert store.prune("2026-12-01T10:30:00Z") == (1, None)  # e1 only: A and C are linked to B
    assert store.article("e1") is None
    assert [m["article_id"] for m in store.story("B")["members"]] == ["a1", "b2"]  # type: ignore[index]
    assert store.story("A") is not None and store.story("C") is not None
    assert store.prune("2026-12-01T11:00:00Z") == (3, None)  # all old now: all gone, links too
    assert store.counts() == {"stories": 0, "articles": 0}
    assert store.db.execute("SELECT COUNT(*) FROM lineage").fetchone()[0] == 0


def test_the_retention_leaves_no_link_to_a_story_it_deleted():
    store = StoryStore()
    store.apply(
        [
            ("enriched", enriched("a1", "A", "wire.example", 1)),
            ("story", story("A", ["a1"], ["wire.example"], 3, merged_into="B", status="merged")),
            ("story", story("B", ["a1"], ["wire.example"], 4, merged_from=["A"])),
            # B's new member, whose story record is still to come; and a page with no story.
            ("enriched", enriched("b2", "B", "daily.example", 40)),
            ("enriched", {**enriched("e1", "", "wire.example", 0), "story_id": None}),
        ]
    )
    assert store.prune("2026-12-01T10:30:00Z") == (2, None)  # a1 and e1: B is kept for b2 only
    assert store.story("A") is None and store.article("e1") is None
    b = store.story("B")
    assert b is not None and b["lineage"] == [] and [m["article_id"] for m in b["members"]] == ["b2"]


def test_an_entity_is_named_as_prose_writes_it_not_as_a_dateline_shouts_it():
    s = StoryStore()
    shouted = {"key": "paris", "name": "PARIS", "label": "GPE"}
    s.apply(
        [
            ("enriched", enriched("p1", "sp", "wire.example", 1, entities=[shouted])),
            ("enriched", enriched("p2", "sp", "daily.example", 2, entities=[entity("paris")])),
            ("story", story("sp", ["p1", "p2"], ["wire.example", "daily.example"], 2)),
        ]
    )
    assert [e["name"] for e in s.story("sp")["entities"]] == ["Paris"]  # type: ignore[index]
    assert [e["name"] for e in s.entities("par")] == ["Paris"]


def test_pages_stay_stable_while_stories_are_inserted():
    s = StoryStore()
    s.apply([("story", story(f"s{i:02d}", ["x"], ["o"], i)) for i in range(30)])
    first, cursor = s.stories(StoryQuery(limit=10))
    assert cursor is not None
    # Newer stories arrive while the client reads the first page.
    s.apply([("story", story(f"new{i}", ["x"], ["o"], 50 + i)) for i in range(5)])
    second, cursor = s.stories(StoryQuery(limit=10, cursor=cursor))
    third, last = s.stories(StoryQuery(limit=10, cursor=cursor))
    ids = [x["story_id"] for x in first + second + third]
    assert ids == [f"s{i:02d}" for i in range(29, -1, -1)] and last is None


def test_an_entity_filter_with_nothing_to_filter_by_is_refused_not_ignored(store: StoryStore):
    # "%" keyed to "": the filter would have been dropped and every story listed
    with pytest.raises(BadQuery, match="entity has no letters or digits"):
        store.stories(StoryQuery(entity="%"))


def test_bad_queries_are_refused_with_a_reason(store: StoryStore):
    with pytest.raises(BadQuery, match="limit"):
        store.stories(StoryQuery(limit=0))
    with pytest.raises(BadQuery, match="cursor"):
        store.stories(StoryQuery(cursor="not-a-cursor!"))
    with pytest.raises(BadQuery, match="q is required"):
        store.entities(" ")


def test_entities_by_prefix_with_their_stories(store: StoryStore):
    (kursk,) = store.entities("KUR")
    assert kursk["articles"] == 2 and kursk["story_ids"] == ["s1"]


def _openapi() -> dict[str, Any]:
    return json.loads((resources.files("newsflow.web") / "openapi.json").read_bytes())


def _validate(instance: Any, component: str) -> None:
    spec = _openapi()
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def test_the_api_answers_as_its_openapi_file_says(store: StoryStore):
    async def run() -> None:
        async with TestClient(TestServer(build_app(store))) as client:
            r = await client.get("/api/stories", params={"limit": "1"})
            assert r.status == 200
            body = await r.json()
            assert [s["story_id"] for s in body["stories"]] == ["s2"] and body["next_cursor"]
            for s in body["stories"]:
                _validate(s, "StorySummary")
            r = await client.get("/api/stories", params={"cursor": body["next_cursor"]})
            assert [s["story_id"] for s in (await r.json())["stories"]] == ["s1"]
            r = await client.get("/api/stories/s1")
            _validate(await r.json(), "Story")
            assert (await client.get("/api/articles/a3")).status == 200
            assert (await client.get("/api/stories/missing")).status == 404
            for params, reason in [
                ({"limit": "x"}, "limit must be an integer"),
                ({"since": "yesterday"}, "since must be an ISO 8601 time"),
                ({"min_outlets": "0"}, "min_outlets"),
                ({"colour": "red"}, "unknown parameter 'colour'"),
            ]:
                r = await client.get("/api/stories", params=params)
                assert r.status == 400 and reason in (await r.json())["error"]
            assert (await client.get("/api/entities")).status == 400
            r = await client.get("/api/entities", params={"q": "ku", "bogus": "1"})
            assert r.status == 400 and "unknown parameter 'bogus'" in (await r.json())["error"]
            # s2's last report came at 10:04:00 (whole seconds), before 10:04:00.5
            r = await client.get("/api/stories", params={"since": "2026-12-01T10:04:00.5Z"})
            assert (await r.json())["stories"] == []
            r = await client.get("/api/stories", params={"since": "2026-12-01T10:03:59.5Z"})
            assert [s["story_id"] for s in (await r.json())["stories"]] == ["s2"]
            r = await client.get("/api/no-such-thing")
            assert r.status == 404 and "error" in await r.json()  # JSON, as every API answer
            assert (await client.get("/api/openapi.json")).status == 200
            metrics = await (await client.get("/metrics")).text()
            assert 'newsflow_web_request_seconds_count{route="/api/stories"}' in metrics

    asyncio.run(run())


def test_the_pages_show_stories_and_fold_copies(store: StoryStore):
    async def run() -> None:
        async with TestClient(TestServer(build_app(store))) as client:
            front = await (await client.get("/")).text()
            assert "headline of s1" in front and "headline of s2" in front
            assert "wire.example, daily.example, copycat.example" in front
            filtered = await (await client.get("/", params={"entity": "berlin"})).text()
            assert "headline of s2" in filtered and "headline of s1" not in filtered
            fragment = await (await client.get("/", params={"fragment": "1"})).text()
            assert fragment.startswith("<div id=stories") and "<html" not in fragment
            page = await (await client.get("/stories/s1")).text()
            # Two reports side by side; the copy folded under the report it copies.
            assert page.count("<article class=report>") == 2
            assert "<summary>1 copy</summary>" in page and "copycat.example" in page
            assert (await client.get("/stories/missing")).status == 404

    asyncio.run(run())


def revision(article_id: str, outlet: str, minute: int, of: str, **extra: Any) -> dict[str, Any]:
    """An outlet's report sent again, edited, into story s1: a revision of `of`."""
    return enriched(article_id, "s1", outlet, minute, source={"outlet": outlet, "revision_of": of}, **extra)


def story_page_of(store: StoryStore, story_id: str) -> str:
    """The HTML of a story's page, as the service serves it."""

    async def fetch() -> str:
        async with TestClient(TestServer(build_app(store))) as client:
            return await (await client.get(f"/stories/{story_id}")).text()

    return asyncio.run(fetch())


def report_of(page: str, outlet: str) -> str:
    """The HTML of one outlet's report on a story's page."""
    start = page.index(f"{outlet} · ")
    return page[start : page.index("</article>", start)]


def test_a_revised_report_stands_in_for_the_version_it_revises(store: StoryStore):
    # daily.example edits its report and sends it again: the revision is a copy of it too.
    revised = revision(
        "a2v2", "daily.example", 5, of="a2", duplicate_of="a2", description="about a2, corrected"
    )
    store.apply(
        [("enriched", revised), ("enriched", enriched("a4", "s1", "copycat.example", 6, duplicate_of="a2v2"))]
    )
    members = {m["article_id"]: m for m in store.story("s1")["members"]}  # type: ignore[index]
    assert (members["a2v2"]["revision_of"], members["a2v2"]["copy_of"]) == ("a2", "a2")
    assert members["a2"]["revision_of"] is None
    page = story_page_of(store, "s1")
    # wire.example's report and daily.example's, in its corrected version, the first one folded
    # under it (not a third report, not a copy); the copies of either version too.
    assert page.count("<article class=report>") == 2
    daily = report_of(page, "daily.example")
    assert "revised" in daily and "about a2, corrected" in daily and "about a2<" not in daily
    assert "<summary>1 earlier version</summary><ul><li>daily.example: title of a2</li>" in daily
    assert "<summary>1 copy</summary><ul><li>copycat.example: title of a4</li>" in daily


def test_an_outlet_that_republished_a_report_and_then_corrected_it_shows_its_correction(store: StoryStore):
    # metro.example carries wire.example's a1 (a copy), then corrects its version.
    carried = enriched("m1", "s1", "metro.example", 7, duplicate_of="a1")
    corrected = revision("m1v2", "metro.example", 8, of="m1", duplicate_of="a1")
    store.apply([("enriched", carried), ("enriched", corrected)])
    page = story_page_of(store, "s1")
    # wire's, daily's and metro's reports: metro's in its corrected version, its first under it.
    assert page.count("<article class=report>") == 3
    metro = report_of(page, "metro.example")
    assert "title of m1v2" in metro
    assert "<summary>1 earlier version</summary><ul><li>metro.example: title of m1</li>" in metro


def test_a_record_the_view_cannot_read_is_skipped_and_the_offsets_still_move(store: StoryStore):
    bad = [
        ("enriched", 5),  # not an object
        ("enriched", {"story_id": "s9"}),  # no article id
        ("enriched", enriched("c1", "s9", "o", 9, entities=[{"key": "x"}])),  # an entity without a label
        ("story", {**story("s9", ["c1"], ["o"], 9), "version": "v2"}),
    ]
    good = ("story", story("s8", ["d1"], ["o"], 8))
    assert store.apply([*bad, good], {("stories", 0): 9}) == 1  # type: ignore[list-item]
    assert store.skipped == 4 and store.offsets()[("stories", 0)] == 9
    assert store.story("s8") is not None and store.story("s9") is None and store.article("c1") is None


def test_entities_are_looked_up_by_their_key_however_they_are_typed():
    s = StoryStore()
    s.apply(
        [
            ("enriched", enriched("z1", "sz", "o", 1, entities=[entity("zurich")])),
            ("enriched", enriched("u1", "su", "o", 2, entities=[entity("united states")])),
            ("enriched", enriched("b1", "sb", "o", 3, entities=[entity("barrick gold")])),
            ("story", story("sz", ["z1"], ["o"], 1)),
            ("story", story("su", ["u1"], ["o"], 2)),
            ("story", story("sb", ["b1"], ["o"], 3)),
        ]
    )
    assert [x["story_id"] for x in s.stories(StoryQuery(entity="Zürich"))[0]] == ["sz"]
    for typed in ("Barrick Gold", "Barrick Gold Corp.", "barrick gold corp"):  # no legal form in keys
        assert [x["story_id"] for x in s.stories(StoryQuery(entity=typed))[0]] == ["sb"]
    for typed in ("U.S.", "USA", "America", "United States"):  # the aliases the records' keys join
        assert [x["story_id"] for x in s.stories(StoryQuery(entity=typed))[0]] == ["su"]
    assert [e["key"] for e in s.entities("Zür")] == ["zurich"]
    for typed in ("U.S.", "USA", "America"):  # a country's other names find its key too
        assert [e["key"] for e in s.entities(typed)] == ["united states"]
    assert s.entities("Uni")[0]["key"] == "united states"


def test_a_link_is_only_a_web_link_and_pages_forbid_other_scripts(store: StoryStore):
    store.apply([("enriched", enriched("x1", "s1", "evil.example", 5, url="javascript:alert(1)"))])

    async def run() -> None:
        async with TestClient(TestServer(build_app(store))) as client:
            response = await client.get("/stories/s1")
            page = await response.text()
            assert 'href="javascript' not in page and "javascript:alert(1)" in page
            assert '<a href="https://wire.example/a1"' in page
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'sha256-" in policy and "unsafe-inline" not in policy.split("style-src")[0]
            assert response.headers["X-Content-Type-Options"] == "nosniff"

    asyncio.run(run())


def test_out_of_range_parameters_are_400s_not_500s(store: StoryStore):
    async def run() -> None:
        async with TestClient(TestServer(build_app(store))) as client:
            for params in (
                {"min_outlets": "99999999999999999999"},
                {"since": "0001-01-01T00:00:00+01:00"},
                {"until": "9999-12-31T23:59:59-01:00"},
            ):
                assert (await client.get("/api/stories", params=params)).status == 400, params
            page = await client.get("/", params={"limit": "x"})
            assert page.status == 400 and "limit must be an integer" in await page.text()

    asyncio.run(run())


def test_the_front_page_pages_with_its_filters_and_refreshes_only_the_first_page():
    s = StoryStore()
    s.apply([("story", story(f"s{i:02d}", ["x"], ["o", "p"], i)) for i in range(5)])

    async def run() -> None:
        async with TestClient(TestServer(build_app(s))) as client:
            first = await (await client.get("/", params={"min_outlets": "2", "limit": "2"})).text()
            assert "data-src=" in first and "min_outlets=2" in first.split("data-src=")[1].split(">")[0]
            older = first.split('<p><a href="')[1].split('"')[0].replace("&amp;", "&")
            assert "min_outlets=2" in older and "limit=2" in older and "cursor=" in older
            second = await (await client.get(older)).text()
            assert "headline of s02" in second and "headline of s04" not in second
            assert "data-src=" not in second and "<script>" not in second

    asyncio.run(run())


def test_a_merged_story_leads_to_the_one_that_took_it_in(store: StoryStore):
    # s2 is found to report s1's event: its last record names s1, whose record lists it.
    store.apply(
        [
            (
                "story",
                story("s2", ["b1"], ["daily.example"], 5, status="closed", merged_into="s1", version=2),
            ),
            ("enriched", enriched("a4", "s1", "wire.example", 5)),
            (
                "story",
                story("s1", ["a1", "a2", "a3", "b1", "a4"], ["wire.example"], 5, merged_from=["s2"]),
            ),
        ]
    )
    s1, s2 = store.story("s1"), store.story("s2")
    assert s1 is not None and s2 is not None
    # The survivor lists the absorbed story's members (published under s2) with its own.
    assert [m["article_id"] for m in s1["members"]] == ["a1", "a2", "a3", "b1", "a4"]
    assert "berlin" in {e["key"] for e in s1["entities"]}
    assert s1["lineage"] == [{"event": "merged_from", "story_id": "s2", "at": "2026-12-01T10:05:00Z"}]
    assert s2["lineage"] == [{"event": "merged_into", "story_id": "s1", "at": "2026-12-01T10:05:00Z"}]
    assert [m["article_id"] for m in s2["members"]] == ["b1"]
    # The list shows the event once, as the survivor, also when found by the absorbed members.
    assert [s["story_id"] for s in store.stories(StoryQuery())[0]] == ["s1"]
    for query in (StoryQuery(entity="berlin"), StoryQuery(lang="de"), StoryQuery(outlet="wire.example")):
        assert [s["story_id"] for s in store.stories(query)[0]] == ["s1"], query
    _validate(s1, "Story")
    _validate(s2, "Story")


def test_a_split_story_lists_the_members_that_left_whichever_topic_is_read_first(store: StoryStore):
    # s1 (a1, a2, a3) turns out to tell two events: a2 and a later a5 leave it for s3. a5's record
    # is read after the split's, a2's before.
    store.apply(
        [
            ("story", story("s3", ["a2", "a5"], ["daily.example"], 6, split_from="s1")),
            ("story", story("s1", ["a1", "a3"], ["wire.example"], 6, split_into=["s3"], version=5)),
            ("enriched", enriched("a5", "s1", "daily.example", 6, entities=[entity("odesa")])),
        ]
    )
    s1, s3 = store.story("s1"), store.story("s3")
    assert s1 is not None and s3 is not None
    assert [m["article_id"] for m in s1["members"]] == ["a1", "a3"]
    assert [m["article_id"] for m in s3["members"]] == ["a2", "a5"]
    assert "odesa" in {e["key"] for e in s3["entities"]} and "odesa" not in {e["key"] for e in s1["entities"]}
    assert s3["lineage"] == [{"event": "split_from", "story_id": "s1", "at": "2026-12-01T10:06:00Z"}]
    assert s1["lineage"] == [{"event": "split_into", "story_id": "s3", "at": "2026-12-01T10:06:00Z"}]
    # An article record keeps the story it was published with; both stories are listed.
    assert store.article("a2")["story_id"] == "s1"  # type: ignore[index]
    assert {"s1", "s3"} <= {s["story_id"] for s in store.stories(StoryQuery())[0]}
    # s3 splits in turn (a5 and a6 leave for s4); its older record, delivered again, moves nothing back.
    store.apply(
        [
            ("story", story("s4", ["a5", "a6"], ["daily.example"], 7, split_from="s3")),
            (
                "story",
                story("s3", ["a2"], ["daily.example"], 7, split_from="s1", split_into=["s4"], version=5),
            ),
            ("story", story("s3", ["a2", "a5"], ["daily.example"], 6, split_from="s1")),
        ]
    )
    assert [m["article_id"] for m in store.story("s3")["members"]] == ["a2"]  # type: ignore[index]
    assert [m["article_id"] for m in store.story("s4")["members"]] == ["a5"]  # type: ignore[index]
    _validate(s1, "Story")
    _validate(s3, "Story")


def test_an_article_sent_again_after_its_split_story_closed_is_listed_in_both_stories(store: StoryStore):
    """A split moves its members to the new story in the view, those whose records name a story
    it descends from; an article's record that names another story (the article sent again once
    the split story had let it go) is in that story now, and still listed by the split story,
    whose records list it, whichever topic is read first."""

    def members(view: StoryStore, story_id: str) -> list[str]:
        return [m["article_id"] for m in view.story(story_id)["members"]]  # type: ignore[index]

    store.apply(
        [
            ("enriched", enriched("a2", "s1", "daily.example", 5)),
            ("story", story("s3", ["a2", "a5"], ["daily.example"], 6, split_from="s1")),
            ("story", story("s3", ["a2", "a5"], ["daily.example"], 9, status="closed", version=3)),
            ("enriched", enriched("a2", "s7", "daily.example", 30)),
            ("story", story("s7", ["a2"], ["daily.example"], 30)),
        ]
    )
    assert members(store, "s7") == ["a2"] and members(store, "s3") == ["a2"]
    assert store.article("a2")["story_id"] == "s7"  # type: ignore[index]
    # A split story that runs on lists its opening members after it let them go (records.
    # bounded_members): a later record of it moves nothing back.
    store.apply(
        [("story", story("s3", ["a2", "a5", "a9"], ["daily.example"], 40, split_from="s1", version=4))]
    )
    assert members(store, "s7") == ["a2"] and members(store, "s3") == ["a2"]
    assert store.article("a2")["story_id"] == "s7"  # type: ignore[index]
    # The stories topic read behind the enriched topic: the split, read after the later record,
    # moves the record that came before it, not the one that came after.
    late = StoryStore()
    late.apply(
        [
            ("enriched", enriched("a1", "s1", "wire.example", 5)),
            ("enriched", enriched("a2", "s7", "daily.example", 30)),
            ("story", story("s3", ["a1", "a2"], ["wire.example", "daily.example"], 6, split_from="s1")),
            ("story", story("s7", ["a2"], ["daily.example"], 30)),
        ]
    )
    assert members(late, "s3") == ["a1", "a2"] and members(late, "s7") == ["a2"]
    assert late.article("a2")["story_id"] == "s7"  # type: ignore[index]
    # The same records in either order of the topics: s1 lists what its split left it.
    orders = {}
    for name, records in {
        "enriched first": [
            ("enriched", enriched("a1", "s1", "wire.example", 5)),
            ("enriched", enriched("a2", "s1", "daily.example", 5)),
            ("enriched", enriched("a2", "s7", "daily.example", 30)),
            ("story", story("s3", ["a2"], ["daily.example"], 6, split_from="s1")),
            ("story", story("s1", ["a1"], ["wire.example"], 6, split_into=["s3"], version=3)),
            ("story", story("s7", ["a2"], ["daily.example"], 30)),
        ],
        "stories first": [
            ("enriched", enriched("a1", "s1", "wire.example", 5)),
            ("enriched", enriched("a2", "s1", "daily.example", 5)),
            ("story", story("s3", ["a2"], ["daily.example"], 6, split_from="s1")),
            ("story", story("s1", ["a1"], ["wire.example"], 6, split_into=["s3"], version=3)),
            ("enriched", enriched("a2", "s7", "daily.example", 30)),
            ("story", story("s7", ["a2"], ["daily.example"], 30)),
        ],
    }.items():
        view = StoryStore()
        view.apply(records)
        orders[name] = {s: members(view, s) for s in ("s1", "s3", "s7")}
    assert orders["enriched first"] == orders["stories first"] == {"s1": ["a1"], "s3": ["a2"], "s7": ["a2"]}


def test_a_closed_story_still_lists_the_members_sent_again_into_a_new_story():
    """A backfill days later sends a closed story's articles again: they are decided into a new
    story, and the closed one, whose last record lists them, still lists them (not "2 reports"
    and none shown); a redelivered record changes nothing."""
    view = StoryStore()
    view.apply(
        [
            ("enriched", enriched("a1", "s1", "alpha.example", 1, entities=[entity("fda", "ORG")])),
            ("enriched", enriched("a2", "s1", "beta.example", 2, entities=[entity("fda", "ORG")])),
            ("story", story("s1", ["a1", "a2"], ["alpha.example", "beta.example"], 2)),
            (
                "story",
                story("s1", ["a1", "a2"], ["alpha.example", "beta.example"], 9, status="closed", version=3),
            ),
            ("enriched", enriched("a1", "s9", "alpha.example", 40, entities=[entity("fda", "ORG")])),
            ("enriched", enriched("a2", "s9", "beta.example", 41, entities=[entity("fda", "ORG")])),
            ("enriched", enriched("a2", "s9", "beta.example", 41, entities=[entity("fda", "ORG")])),
            ("story", story("s9", ["a1", "a2"], ["alpha.example", "beta.example"], 41)),
        ]
    )
    for story_id in ("s1", "s9"):
        shown = view.story(story_id)
        assert shown is not None and [m["article_id"] for m in shown["members"]] == ["a1", "a2"]
        assert shown["member_count"] == 2
        assert [(e["key"], e["articles"]) for e in shown["entities"]] == [("fda", 2)]  # its members' entities
    assert view.article("a1")["story_id"] == "s9"  # type: ignore[index]
    # Once the old story is gone from the view (its retention), nothing of it is left behind.
    view.prune("2026-12-01T10:20:00Z")
    assert view.story("s1") is None and view.db.execute("SELECT COUNT(*) FROM earlier").fetchone()[0] == 0
    assert [m["article_id"] for m in view.story("s9")["members"]] == ["a1", "a2"]  # type: ignore[index]


def test_a_view_that_cannot_read_the_output_topics_counts_each_failure_and_keeps_trying(store: StoryStore):
    from prometheus_client import CollectorRegistry

    from newsflow.settings import KafkaSettings
    from newsflow.web.service import Follower, follow_metrics

    registry = CollectorRegistry()
    follower = Follower(KafkaSettings(bootstrap="127.0.0.1:1"), store, *follow_metrics(registry))

    async def follow_a_while() -> None:
        with pytest.raises(TimeoutError):  # it never gives up: the view serves what it has
            await asyncio.wait_for(follower.run(), timeout=3)

    asyncio.run(follow_a_while())
    assert registry.get_sample_value("newsflow_web_follow_failures_total") == 1  # then again after 5 s


def test_the_follower_deletes_what_its_retention_lets_go_in_batches(monkeypatch: pytest.MonkeyPatch):
    from datetime import UTC, datetime, timedelta

    from prometheus_client import CollectorRegistry

    from newsflow.pipeline.dates import rfc3339
    from newsflow.settings import KafkaSettings
    from newsflow.web import service

    def at(days_ago: float) -> str:
        return rfc3339(datetime.now(UTC) - timedelta(days=days_ago))

    store = StoryStore()
    store.apply(
        [
            ("enriched", {**enriched(f"old{i}", "s-old", "wire.example", 1), "processed_at": at(40)})
            for i in range(5)
        ]
        + [
            (
                "story",
                {**story("s-old", [f"old{i}" for i in range(5)], ["wire.example"], 1), "updated_at": at(40)},
            )
        ]
        + [("enriched", {**enriched("new", "s-new", "wire.example", 2), "processed_at": at(1)})]
        + [("story", {**story("s-new", ["new"], ["wire.example"], 2), "updated_at": at(1)})]
    )
    monkeypatch.setattr(service, "PRUNE_BATCH", 2)
    calls = []
    monkeypatch.setattr(store, "prune", lambda *a, _prune=store.prune: calls.append(a) or _prune(*a))
    kafka, registry = KafkaSettings(bootstrap="127.0.0.1:1"), CollectorRegistry()
    keep_all = service.Follower(kafka, store, *service.follow_metrics(registry))
    assert asyncio.run(keep_all.prune()) == 0 and store.counts()["articles"] == 6  # the default: 0
    registry = CollectorRegistry()
    follower = service.Follower(kafka, store, *service.follow_metrics(registry), retention_days=30)
    assert asyncio.run(follower.prune()) == 5
    assert registry.get_sample_value("newsflow_web_pruned_articles_total") == 5
    assert len(calls) == 3  # 2 + 2 + 1: the API's requests get in between
    assert store.counts() == {"stories": 1, "articles": 1} and store.story("s-new") is not None
