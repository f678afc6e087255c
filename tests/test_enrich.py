"""Text enrichment with the real offline models: sentiment, entities, cleaning, spelling."""

from __future__ import annotations

import pytest

from picsift.text import enrich as E
from picsift.text.enrich import Enrichment, available, clean, correct, enrich, enrich_many

HAVE = available()
needs_vader = pytest.mark.skipif(not HAVE["vader"], reason="vaderSentiment is not installed")
needs_textblob = pytest.mark.skipif(not HAVE["textblob"], reason="textblob is not installed")
needs_spacy = pytest.mark.skipif(
    not HAVE["spacy_en"], reason="spaCy or an English model (en_core_web_sm) is not installed")
needs_symspell = pytest.mark.skipif(not HAVE["symspellpy"], reason="symspellpy is not installed")

POSITIVE = "I love this, what a wonderful day! Thanks to everyone who helped."
NEGATIVE = "This is a terrible, disgusting disaster. I hate it."
NEUTRAL = "The train leaves from platform four."


def test_available_names_every_component() -> None:
    assert set(HAVE) == {"symspellpy", "vader", "textblob", "spacy_en", "textblob_fr", "spacy_fr"}
    assert all(isinstance(v, bool) for v in HAVE.values())


@needs_vader
@pytest.mark.parametrize(("text", "label"), [
    (POSITIVE, "positive"), (NEGATIVE, "negative"), (NEUTRAL, "neutral"),
    ("I HATE MONDAYS SO MUCH", "negative"),          # caps meme text
])
def test_vader_sentiment(text: str, label: str) -> None:
    result = enrich(text, "en", None)
    assert result.sentiment == label
    assert -1.0 <= result.sentiment_score <= 1.0
    assert "vader-" in result.model


@needs_textblob
def test_polarity_and_subjectivity_ranges() -> None:
    good, bad, plain = (enrich(t, "en", None) for t in (POSITIVE, NEGATIVE, NEUTRAL))
    for r in (good, bad, plain):
        assert -1.0 <= r.polarity <= 1.0
        assert 0.0 <= r.subjectivity <= 1.0
    assert good.polarity > 0.3 and bad.polarity < -0.3
    assert good.subjectivity > plain.subjectivity
    assert "textblob-" in good.model


@needs_spacy
def test_entities_persons_and_place_with_offsets() -> None:
    text = "Angela Merkel met Emmanuel Macron in Berlin."
    result = enrich(text, "en", None)
    found = {(e["text"], e["label"]) for e in result.entities}
    assert {("Angela Merkel", "PERSON"), ("Emmanuel Macron", "PERSON"), ("Berlin", "GPE")} <= found
    for e in result.entities:
        assert text[e["start"]:e["end"]] == e["text"]
    assert result.columns()["entity_type"] == [e["label"] for e in result.entities]
    assert "spacy-en_core_web_sm" in result.model


@needs_spacy
def test_caps_meme_entities_keep_their_caps() -> None:
    text = "ANGELA MERKEL MET EMMANUEL MACRON\nIN BERLIN"
    found = {(e["text"], e["label"]) for e in enrich(text, "en", None).entities}
    assert {("ANGELA MERKEL", "PERSON"), ("EMMANUEL MACRON", "PERSON"), ("BERLIN", "GPE")} <= found


# Caps meme sentences with their entities (person/place/org/nationality), written in
# normal case so that the cased result is the upper bound; measured in docs/text-enrichment.md.
MEMES = [
    ("When Elon Musk buys Twitter and moves to Texas",
     {("elon musk", "PERSON"), ("twitter", "ORG"), ("texas", "PLACE")}),
    ("Angela Merkel met Emmanuel Macron in Berlin",
     {("angela merkel", "PERSON"), ("emmanuel macron", "PERSON"), ("berlin", "PLACE")}),
    ("Putin invaded Ukraine and NATO did nothing",
     {("putin", "PERSON"), ("ukraine", "PLACE"), ("nato", "ORG")}),
    ("Me waiting for the wifi to come back on Monday", set()),
    ("Joe Biden visits Kyiv to meet Zelensky",
     {("joe biden", "PERSON"), ("kyiv", "PLACE"), ("zelensky", "PERSON")}),
    ("Greenpeace protesters block Shell headquarters in London",
     {("greenpeace", "ORG"), ("shell", "ORG"), ("london", "PLACE")}),
    ("One does not simply walk into Mordor", {("mordor", "PLACE")}),
    ("Donald Trump says Mexico will pay for the wall",
     {("donald trump", "PERSON"), ("mexico", "PLACE")}),
    ("Taylor Swift fans crash Ticketmaster again",
     {("taylor swift", "PERSON"), ("ticketmaster", "ORG")}),
    ("The European Union fines Google four billion euros",
     {("the european union", "ORG"), ("google", "ORG")}),
    ("Nobody: absolutely nobody: my cat at 3 am", set()),
    ("Olaf Scholz and Rishi Sunak meet in Paris",
     {("olaf scholz", "PERSON"), ("rishi sunak", "PERSON"), ("paris", "PLACE")}),
    ("Keep calm and carry on", set()),
    ("When your mom finds your report card", set()),
    ("Breaking: Amazon workers in Seattle go on strike",
     {("amazon", "ORG"), ("seattle", "PLACE")}),
    ("Thousands march in London against the war in Gaza",
     {("london", "PLACE"), ("gaza", "PLACE")}),
    ("Barack Obama and Michelle Obama visit Chicago",
     {("barack obama", "PERSON"), ("michelle obama", "PERSON"), ("chicago", "PLACE")}),
    ("Microsoft buys Activision for 69 billion dollars",
     {("microsoft", "ORG"), ("activision", "ORG")}),
    ("Nobody expects the Spanish inquisition", {("spanish", "NORP")}),
    ("Stop the war in Ukraine now", {("ukraine", "PLACE")}),
]
_COARSE = {"PERSON": "PERSON", "GPE": "PLACE", "LOC": "PLACE", "FAC": "PLACE", "ORG": "ORG",
           "NORP": "NORP"}


def _f1(predicted: list[set], gold: list[set]) -> float:
    tp = sum(len(p & g) for p, g in zip(predicted, gold))
    fp = sum(len(p - g) for p, g in zip(predicted, gold))
    fn = sum(len(g - p) for p, g in zip(predicted, gold))
    return 2 * tp / max(2 * tp + fp + fn, 1)


@needs_spacy
@needs_symspell
def test_caps_recasing_beats_raw_caps_on_memes() -> None:
    nlp, _ = E._spacy_en()
    caps = [text.upper() for text, _ in MEMES]
    gold = [g for _, g in MEMES]
    raw = [{(caps[i][e.start_char:e.end_char].lower(), _COARSE[e.label_])
            for e in doc.ents if e.label_ in _COARSE} for i, doc in enumerate(nlp.pipe(caps))]
    ours = [{(e["text"].lower(), _COARSE[e["label"]]) for e in r.entities if e["label"] in _COARSE}
            for r in enrich_many([(t, "en", None) for t in caps], spell=False)]
    assert _f1(ours, gold) >= 0.7            # measured 0.80; raw caps 0.43
    assert _f1(ours, gold) > _f1(raw, gold) + 0.2


def test_clean_drops_numbers_garbage_and_stray_letters() -> None:
    result = enrich("Call 12345 now |l|~ for the best deals ~~ @#$ x 3am 2024", "en", None)
    words = result.text_clean.split()
    assert words == ["Call", "now", "for", "the", "best", "deals"]


def test_clean_keeps_hashtags_handles_and_drops_links() -> None:
    text = "Stop the war #StopWar @bbcnews https://bbc.co.uk/news mail@example.org"
    assert clean(text, "en") == "Stop the war #StopWar @bbcnews"


@needs_symspell
def test_clean_english_uses_the_dictionary() -> None:
    assert clean("the qzxv xkcdq people", "en") == "the people"
    assert clean("NATO and the USA", "en") == "NATO and the USA"       # caps acronyms stay
    assert clean("We met Zelensky in Kyiv", "en") == "We met Zelensky in Kyiv"  # names stay


def test_clean_other_languages_keep_words_of_their_script() -> None:
    assert clean("Die Regierung hat 12345 neue |l|~ Maßnahmen angekündigt.", "de") == \
        "Die Regierung hat neue Maßnahmen angekündigt"
    assert clean("Сьогодні в Києві 2024 відбулася зустріч", "uk") == \
        "Сьогодні в Києві відбулася зустріч"
    assert clean("今天北京的天气很好。2024", "zh") == "今天北京的天气很好"
    assert clean("lIlI Kиїв hello", "de") == "hello"     # odd case, mixed scripts out


@needs_symspell
def test_spell_correction_fixes_misspellings() -> None:
    assert correct("The govermnent said no.") == "The government said no."
    assert correct("I beleive the goverment is corupt") == "I believe the government is corrupt"
    assert correct("THE GOVERMNENT LIED") == "THE GOVERNMENT LIED"          # caps stay caps
    assert correct("the WIFl is down") in ("the WIFI is down", "the WIFl is down")
    assert correct("rnoney for h0me") == "money for home"                   # OCR look-alikes


@needs_symspell
def test_spell_correction_leaves_real_tokens_alone() -> None:
    text = "WIFI #StopWar @bbcnews NATO Kyiv parc lol selfie tweets Sunak https://t.co/x"
    assert correct(text) == text
    assert correct("WIFl") != "will"


@needs_symspell
@needs_spacy
def test_enrich_corrects_english_but_not_entities() -> None:
    result = enrich("The govermnent of Kyiv thanks NATO. #StopWar @bbcnews WIFI", "en", None)
    corrected = result.text_english_correct
    assert "government" in corrected
    for token in ("Kyiv", "NATO", "#StopWar", "@bbcnews", "WIFI"):
        assert token in corrected
        assert token in result.text_clean
    assert "symspellpy-" in result.model


def test_foreign_text_without_translation_gets_no_english_columns() -> None:
    result = enrich("Die Regierung ist eine Katastrophe.", "de", None)
    assert result.sentiment is None and result.sentiment_score is None
    assert result.polarity is None and result.subjectivity is None
    assert result.entities == []
    assert result.text_english_correct is None
    assert result.text_clean == "Die Regierung ist eine Katastrophe"


@needs_vader
@needs_spacy
def test_translation_is_what_english_tools_read() -> None:
    result = enrich("Angela Merkel traf Emmanuel Macron. Eine Katastrophe!", "de",
                    "Angela Merkel met Emmanuel Macron. A disaster!")
    assert result.sentiment == "negative"
    assert {"Angela Merkel", "Emmanuel Macron"} <= {e["text"] for e in result.entities}
    assert result.text_clean == "Angela Merkel traf Emmanuel Macron Eine Katastrophe"


def test_french_without_french_tools_stays_empty() -> None:
    result = enrich("Ce gouvernement est une catastrophe.", "fr", None)
    if not HAVE["textblob_fr"]:
        assert result.polarity is None
    else:
        assert result.polarity < 0
    assert result.sentiment is None                     # VADER is English-only
    if not HAVE["spacy_fr"]:
        assert result.entities == []


def test_empty_and_undetermined_texts() -> None:
    assert enrich("", "en", None) == Enrichment("", None, None, None, None, None, [],
                                                 "picsift-enrich-1")
    result = enrich("||| 123", "und", None)
    assert result.text_clean == "" and result.sentiment is None


def test_enrich_many_is_aligned_with_enrich() -> None:
    items = [
        ("Angela Merkel met Emmanuel Macron in Berlin.", "en", None),
        ("Die Regierung ist eine Katastrophe.", "de", None),
        ("WHEN THE GOVERMNENT TURNS OFF THE WIFl", "en", None),
        ("", "und", None),
        ("Die Regierung ist eine Katastrophe.", "de", "The government is a disaster."),
        (POSITIVE, "en", None),
    ]
    assert enrich_many(items) == [enrich(*item) for item in items]
    assert enrich_many(items, spell=False, entities=False) == \
        [enrich(*item, spell=False, entities=False) for item in items]


def test_options_switch_parts_off() -> None:
    result = enrich("Angela Merkel visited the govermnent.", "en", None,
                    spell=False, entities=False)
    assert result.entities == [] and result.text_english_correct is None
    assert "spacy" not in result.model


def test_a_missing_component_empties_its_columns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(E, "_vader", lambda: None)
    monkeypatch.setattr(E, "_installed", lambda module: module != "vaderSentiment")
    assert available()["vader"] is False
    result = enrich(POSITIVE, "en", None)
    assert result.sentiment is None and result.sentiment_score is None
    assert "vader" not in result.model
    if HAVE["textblob"]:
        assert result.polarity is not None
