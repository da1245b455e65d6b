from __future__ import annotations

import pytest

from newsflow.pipeline.extract import extract_article
from newsflow.pipeline.records import CleanArticle
from newsflow.pipeline.textclean import BoilerplateModel, apply_rules, line_fingerprint, link_key
from tests.conftest import SEEDS, raw_from_file

BOILERPLATE_SNIPPETS = (
    "Also read",
    "pic.twitter.com",
    "(@RT_com)",
    "To view this video",
    "enable JavaScript",
    "HTML5",
    "Get in touch with our news team",
    "For more stories like this",
    "What’s next for Ukraine peace deal",  # a headline in the 'Also read' link list
)


@pytest.mark.parametrize("seed", sorted(SEEDS.glob("*.txt")), ids=lambda p: p.name)
def test_seed_text_has_no_boilerplate(seed):
    article = extract_article(raw_from_file(seed))
    assert isinstance(article, CleanArticle)
    for snippet in BOILERPLATE_SNIPPETS:
        assert snippet not in article.text


@pytest.mark.parametrize("seed", sorted(SEEDS.glob("*.txt")), ids=lambda p: p.name)
def test_seed_text_keeps_every_article_paragraph(seed):
    original = seed.read_text(encoding="utf-8")
    article = extract_article(raw_from_file(seed))
    assert isinstance(article, CleanArticle)
    # Every line of the original that no rule names is an article paragraph and must survive whole.
    body = [
        ln.strip()
        for ln in original.splitlines()
        if ln.strip()
        and not any(s in ln for s in BOILERPLATE_SNIPPETS)
        and not ln.startswith("- ")
        and ln.strip() not in ("browser that", "supports HTML5", "video")
    ]
    kept = article.text.splitlines()
    assert len(body) >= 10
    for paragraph in body:
        # the video notice is glued onto the end of one paragraph; its sentence must stay
        assert any(paragraph.split("To view")[0].strip() in k for k in kept), paragraph


def test_video_notice_glued_to_a_sentence_is_cut_out():
    text = "said Ushakov.To view this video please enable JavaScript, and consider upgrading to a web\nbrowser that\nsupports HTML5\nvideo\nNext paragraph here."
    assert apply_rules(text).text == "said Ushakov.\nNext paragraph here."


def test_link_list_is_dropped_until_the_article_resumes():
    text = (
        "First paragraph of the story, long enough to be real.\nAlso read\n- Headline one\n- Headline two\n"
        "Headline three without bullet\nThe story goes on with a full sentence that ends properly."
    )
    result = apply_rules(text)
    assert result.text.splitlines() == [
        "First paragraph of the story, long enough to be real.",
        "The story goes on with a full sentence that ends properly.",
    ]
    assert result.removed["link_list"] == 4


def test_ordinary_sentences_starting_like_headings_are_kept():
    text = "Related news organizations said the merger would close in May.\nRead more about it tomorrow, he said."
    assert apply_rules(text).text == text


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("Putin and Trump had ‘productive’ talks on Ukraine pic.twitter.com/cko9ryuRNy", "social_embed"),
        ("— RT (@RT_com) March 14, 2025", "social_embed"),
        ("Get in touch with our news team by emailing us at webnews@metro.co.uk.", "contact_blurb"),
        ("For more stories like this, check our news page.", "newsletter"),
        ("Sign up to our newsletter for the latest news in your inbox.", "newsletter"),
        ("By Maria Jensen", "byline"),
        ("Updated: 14 March 2025 10:31 GMT", "byline"),
        ("Advertisement", "ad_marker"),
        ("Share this article", "share_prompt"),
    ],
)
def test_each_rule_removes_its_line(line, rule):
    result = apply_rules(f"A real first paragraph of news text.\n{line}\nA real last paragraph.")
    assert result.removed == {rule: 1}
    assert line not in result.text


def test_a_plain_text_article_on_one_line_is_not_deleted_for_a_tweet_link_inside_it():
    # Plain-text feeds often send a whole article without line breaks; the embedded tweet's link
    # is then part of the article's only line, which a line rule must not remove.
    sentences = [
        f"Council member {n} said the budget for road repairs would be debated again next week."
        for n in range(8)
    ]
    sentences.insert(4, "Watch the moment the vote failed pic.twitter.com/YDcgke2jwJ")
    article = " ".join(sentences)
    result = apply_rules(article)
    assert result.text == article
    assert result.removed == {}


def test_a_quote_with_an_email_address_inside_an_article_is_kept():
    line = "Officials said complaints can be sent to the council at info@council.example by Friday."
    assert apply_rules(line).text == line


def test_learned_footer_is_dropped_after_it_recurs_and_body_is_kept():
    model = BoilerplateModel()
    footer = "Harbour Times is owned by Coastal Media Group. Registered in England no. 1234."
    cleaned = []
    topics = [
        "ferries",
        "tides",
        "cranes",
        "fishing",
        "lighthouse",
        "regatta",
        "dredging",
        "pier",
        "storm",
        "cargo",
        "museum",
        "market",
        "swans",
        "tunnel",
        "sailors",
        "pilots",
        "customs",
        "beach",
        "yacht",
        "quay",
    ]
    for topic in topics:
        body = f"The council debated the {topic} plan on Monday."
        text, _ = model.clean("harbourtimes", f"{body}\nResidents had mixed views on {topic}.\n{footer}")
        cleaned.append(text)
    assert footer in cleaned[0]  # nothing is known about the outlet yet
    for topic, text in list(zip(topics, cleaned, strict=True))[6:]:
        assert footer not in text
        assert text.splitlines() == [
            f"The council debated the {topic} plan on Monday.",
            f"Residents had mixed views on {topic}.",
        ]


def test_learned_boilerplate_is_per_outlet():
    model = BoilerplateModel()
    footer = "Valley Post, your local paper since 1901."
    for i in range(10):
        model.clean("valleypost", f"Body {i} of a story.\n{footer}")
    assert footer not in model.clean("valleypost", f"Body x.\n{footer}", learn=False)[0]
    assert footer in model.clean("harbourtimes", f"Body x.\n{footer}", learn=False)[0]


def test_a_line_shared_by_two_articles_is_not_boilerplate():
    model = BoilerplateModel()
    quote = '"We will rebuild," the mayor said.'
    for i in range(30):
        model.clean("o", f"Unique body {i}." + (f"\n{quote}" if i < 2 else ""))
    assert not model.is_boilerplate("o", line_fingerprint(quote))


def test_boilerplate_model_memory_is_bounded():
    model = BoilerplateModel(max_lines_per_outlet=100, max_outlets=5)
    for i in range(50):
        model.observe(f"outlet{i % 10}", [f"line {i} {j} unique words" for j in range(20)])
    assert len(model.outlets) <= 5
    assert all(len(s.lines) <= 100 for s in model.outlets.values())


def test_boilerplate_state_round_trips():
    model = BoilerplateModel()
    for i in range(8):
        model.observe("o", [f"body {i}", "footer line"])
    state = model.outlet_state("o")
    assert state is not None
    other = BoilerplateModel()
    other.load_outlet_state("o", state)
    assert other.is_boilerplate("o", line_fingerprint("footer line"))


@pytest.mark.parametrize(
    "state", [{"docs": 3}, {"docs": "many", "lines": {}}, {"docs": 3, "lines": [1, 2]}, None]
)
def test_unreadable_boilerplate_state_is_refused_and_leaves_the_model_unchanged(state):
    model = BoilerplateModel()
    model.observe("o", ["a line"])
    with pytest.raises(ValueError, match="unreadable boilerplate state of 'o'"):
        model.load_outlet_state("o", state)
    assert model.outlet_state("o") == {"docs": 1, "lines": {line_fingerprint("a line"): 1}}


def test_a_model_rebuilt_from_its_state_trims_to_the_same_lines():
    live = BoilerplateModel(max_lines_per_outlet=10)
    for i in range(6):
        live.observe("o", [f"line {i} {j}" for j in range(4)])  # ties everywhere
    rebuilt = BoilerplateModel(max_lines_per_outlet=10)
    state = live.outlet_state("o")
    rebuilt.load_outlet_state("o", {"docs": state["docs"], "lines": dict(sorted(state["lines"].items()))})
    for model in (live, rebuilt):
        model.observe("o", ["one more line", "and another"])
    assert live.outlet_state("o") == rebuilt.outlet_state("o")


def test_outlets_forgotten_for_the_limit_are_reported_and_loading_keeps_the_limit():
    model = BoilerplateModel(max_outlets=2)
    for outlet in ("a", "b", "c"):
        model.observe(outlet, ["x"])
    assert model.forgotten == ["a"] and set(model.outlets) == {"b", "c"}
    other = BoilerplateModel(max_outlets=2)
    for outlet in ("a", "b", "c"):
        other.load_outlet_state(outlet, {"docs": 1, "lines": {}})
    assert set(other.outlets) == {"b", "c"} and other.forgotten == ["a"]


def test_a_line_is_dropped_only_when_it_is_a_whole_link_text_of_five_words_or_more():
    links = {link_key("Record tides flood the fish market"), link_key("How to retire early")}
    text = "\n".join(
        [
            "A real first paragraph of news text about the harbour.",
            "- Record tides flood the fish market",  # a list item whose words are a link's
            "How to retire early",  # four words: an article's own subheading as often
            "Record tides flood the fish market again, officials said on Tuesday.",  # prose
        ]
    )
    result = apply_rules(text, from_markup=True, link_texts=links)
    assert result.removed == {"link_line": 1}
    assert result.text.splitlines() == [
        "A real first paragraph of news text about the harbour.",
        "How to retire early",
        "Record tides flood the fish market again, officials said on Tuesday.",
    ]


def test_a_text_is_one_paragraph_per_line_whatever_separators_it_used():
    """Unicode's line and paragraph separators are line breaks (Python's splitlines honours them,
    a split on "\\n" does not: consumers must get the same lines either way); a byte-order mark
    inside a text is no character of it."""
    from newsflow.pipeline.textclean import normalize_text

    text = "First\u2028paragraph.\u2029Second \ufeffone.\r\nThird.\n\n\u00a0Fourth.\x1b[31m"
    normalized = normalize_text(text)
    assert normalized == "First\nparagraph.\nSecond one.\nThird.\nFourth."  # (the colour escape gone)
    assert normalized.splitlines() == normalized.split("\n")
