"""Checks on the hand-authored probe texts in ``fixtures/source/`` (fast, standard library only).

The texts are the inputs of the T*, S*, M* and Q1 claims, so their defects become confounds: a digit or a
name spelt the same in every language inflates cross-lingual similarity, a uniform final mark turns early-layer
"language clusters" into punctuation clusters, an adversarial that does not reuse the anchor's words is not
PAWS-style. These tests pin the rules the README states.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "source"
LANGS = ("en", "fr", "de", "zh", "ja", "id", "vi", "es")
LATIN = ("en", "fr", "de", "id", "vi", "es")
CJK = ("zh", "ja")
LATIN_FINAL = {".": "statement", "?": "question", "!": "exclamation"}
CJK_FINAL = {"。": "statement", "？": "question", "！": "exclamation"}
#: Size of the ``ci`` profile's slice of the parallel set (the first meanings in file order).
CI_MEANINGS = 12
#: Items of the ``full`` profile (m01-m38, p01-p72, in file order); later items are in the ``pool`` profile
#: only (benchmark.probes.recipes.FULL_MEANINGS / FULL_PARAPHRASES). The paraphrase count was 36 until
#: 2026-12-06, when it was raised on purpose for T1's power (the recipe says why).
FULL_MEANINGS = 38
FULL_PARAPHRASES = 72
#: The paraphrase sets of the ``full`` profile before it was raised: they are still its first items, unchanged.
FORMER_FULL_PARAPHRASES = 36
#: sha256 of the canonical JSON (sorted keys, UTF-8) of the first FULL_MEANINGS meanings and FULL_PARAPHRASES
#: sets: the ``full`` profiles' content hashes key recorded expectations, so these items never change.
FULL_SOURCE_SHA256 = {
    "meanings": "13a53b14035cadf8b43473865c917fa4e1c542a3228519aa45fc826468ddd62a",
    "items": "be8432897aea9303685a0b70c15b28ec34d183579f5878199e147817765a6051",
}
#: The same digest of the first FORMER_FULL_PARAPHRASES sets (the ``full`` profile until 2026-12-06).
FORMER_FULL_ITEMS_SHA256 = "3a672e0a1bc0ff795051ddafd4f8916b6fe9660eec6d7566da854d15d30ca49b"
#: Statements, questions and exclamations per block of the parallel set, as the README states them.
SENTENCE_TYPES = {"ci": (9, 2, 1), "full": (25, 9, 4), "added": (28, 10, 4)}
#: Paraphrase sets per authored block, and (statements, questions, exclamations) among each block's anchors.
PARAPHRASE_BLOCK = 36
PARAPHRASE_BLOCK_TYPES = (33, 2, 1)
#: Ceiling on the share of one final mark per language (punctuation must not explain language clusters).
MAX_FINAL_SHARE = 0.9
#: Minimum Jaccard overlap of lower-cased word sets between an anchor and its adversarial.
MIN_ADVERSARIAL_JACCARD = 0.7
#: Maximum Jaccard overlap between an anchor and its unrelated sentence.
MAX_UNRELATED_JACCARD = 0.35
#: Words spelt alike in two or more of the suite's Latin-script languages (international loanwords, and
#: en/de or en/fr/es identical spellings); none may appear in the parallel set.
# fmt: off
LOANWORD_BLOCKLIST = frozenset(
    {
        "hotel", "taxi", "internet", "chocolate", "radio", "bus", "pizza", "computer", "sofa", "film",
        "restaurant", "park", "sport", "bank", "garage", "television", "video", "musik", "hamburger",
        "sandwich", "kilo", "kilometer", "meter", "email", "ok", "okay", "problem", "plan", "moment",
        "minute", "minutes", "station", "village", "table", "animal", "important", "possible", "simple",
        "idea", "hospital", "winter", "hand", "name", "student", "nest", "wind", "warm", "butter",
    }
)
# fmt: on


def _load(name: str) -> dict:
    with open(SOURCE / name, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def parallel() -> dict:
    return _load("parallel_sentences.json")


@pytest.fixture(scope="module")
def paraphrases() -> dict:
    return _load("paraphrases.json")


@pytest.fixture(scope="module")
def grid() -> dict:
    return _load("grid_sentences.json")


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+(?:['’-][^\W\d_]+)*", text.lower())


def _jaccard(a: str, b: str) -> float:
    sa, sb = set(_words(a)), set(_words(b))
    return len(sa & sb) / len(sa | sb)


def _is_kana_text(text: str) -> bool:
    for ch in text:
        if "\u3041" <= ch <= "\u3096" or "\u309d" <= ch <= "\u309f":  # hiragana (+ iteration marks)
            continue
        if "\u30a1" <= ch <= "\u30ff":  # katakana, incl. ー (prolonged sound mark) and ・
            continue
        if ch in "。、？！ 「」":
            continue
        return False
    return True


def _final_kind(text: str, lang: str) -> str | None:
    table = CJK_FINAL if lang in CJK or lang == "ja_kana" else LATIN_FINAL
    return table.get(text[-1:]) if text else None


def _all_texts(parallel: dict, paraphrases: dict, grid: dict) -> list[str]:
    out = []
    for m in parallel["meanings"]:
        out.extend(m["texts"].values())
        out.append(m["ja_kana"])
    for it in paraphrases["items"]:
        out.extend(it[k] for k in ("anchor", "paraphrase", "adversarial", "unrelated"))
    out.extend(s["text"] for s in grid["sentences"])
    return out


# --- all files -------------------------------------------------------------------------------------------


def test_schemas(parallel, paraphrases, grid):
    assert parallel["schema"] == "parallel-sentences/1"
    assert paraphrases["schema"] == "paraphrases/1"
    assert grid["schema"] == "grid-sentences/1"


def test_no_digits_anywhere(parallel, paraphrases, grid):
    # Any decimal digit (ASCII, full-width, ...): numerals must be written as words.
    bad = [
        t for t in _all_texts(parallel, paraphrases, grid) if any(unicodedata.category(c) == "Nd" for c in t)
    ]
    assert not bad


def test_texts_are_clean_strings(parallel, paraphrases, grid):
    for t in _all_texts(parallel, paraphrases, grid):
        assert isinstance(t, str) and t == t.strip() and t
        assert "  " not in t and "\n" not in t and "\t" not in t
        assert unicodedata.normalize("NFC", t) == t, t


def test_no_loanwords_from_blocklist(parallel, paraphrases, grid):
    latin = [m["texts"][lang] for m in parallel["meanings"] for lang in LATIN]
    hits = {(w, t) for t in latin for w in _words(t) if w in LOANWORD_BLOCKLIST}
    assert not hits


def test_english_has_no_names(parallel, paraphrases, grid):
    # Proxy for "no proper names": no capitalised word in English text except the first word and "I".
    english = [m["texts"]["en"] for m in parallel["meanings"]]
    english += [
        it[k] for it in paraphrases["items"] for k in ("anchor", "paraphrase", "adversarial", "unrelated")
    ]
    english += [s["text"] for s in grid["sentences"]]
    for t in english:
        words = re.findall(r"[A-Za-z']+", t)
        assert words[0][0].isupper(), t
        caps = [w for w in words[1:] if w[0].isupper() and w != "I" and not w.startswith("I'")]
        assert not caps, (t, caps)


# --- parallel sentences ----------------------------------------------------------------------------------


def _block(items: list, block: str) -> list:
    """The ``ci`` / ``full`` / ``added`` (after full: the pool-only items) slice of a source, in file order."""
    size = FULL_MEANINGS if items and items[0]["meaning_id"].startswith("m") else FULL_PARAPHRASES
    return {"ci": items[:CI_MEANINGS], "full": items[:size], "added": items[size:]}[block]


@pytest.mark.parametrize(
    ("name", "key"), [("parallel_sentences.json", "meanings"), ("paraphrases.json", "items")]
)
def test_full_profile_items_are_unchanged(name, key):
    items = _load(name)[key]
    full = items[: FULL_MEANINGS if key == "meanings" else FULL_PARAPHRASES]
    assert _digest(full) == FULL_SOURCE_SHA256[key], f"{name}: the full profile's items changed"


def test_raised_full_paraphrases_keep_the_former_full_sets_first():
    """Raising FULL_PARAPHRASES appended sets: the former full profile's sets are its first ones, unchanged."""
    assert _digest(_load("paraphrases.json")["items"][:FORMER_FULL_PARAPHRASES]) == FORMER_FULL_ITEMS_SHA256


def _digest(items: list) -> str:
    return hashlib.sha256(json.dumps(items, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def test_parallel_size_and_ids(parallel):
    ids = [m["meaning_id"] for m in parallel["meanings"]]
    assert len(ids) >= 32
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"m\d{2}", i) for i in ids)
    # Profiles are blocks in file order (ci, ci-alt, full, then the pool-only items): ids count up from m01.
    assert ids == [f"m{k:02d}" for k in range(1, len(ids) + 1)]
    assert all(m.get("topic") for m in parallel["meanings"])
    assert len({m["topic"] for m in parallel["meanings"]}) >= 8


def test_parallel_all_languages_present(parallel):
    for m in parallel["meanings"]:
        assert set(m["texts"]) == set(LANGS), m["meaning_id"]
        assert all(isinstance(m["texts"][lang], str) and m["texts"][lang] for lang in LANGS)


def test_parallel_english_length(parallel):
    lengths = [len(_words(m["texts"]["en"])) for m in parallel["meanings"]]
    assert all(5 <= n <= 18 for n in lengths), lengths
    assert max(lengths) - min(lengths) >= 8  # varied length


def test_parallel_scripts(parallel):
    for m in parallel["meanings"]:
        for lang in LATIN:
            t = m["texts"][lang]
            assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", t), (m["meaning_id"], lang)
        for lang in CJK:
            t = m["texts"][lang]
            assert not re.search(r"[A-Za-z]", t), (m["meaning_id"], lang)
            assert not re.search(r"[,.?!]", t), (m["meaning_id"], lang)  # full-width punctuation in CJK
        assert re.search(r"[\u4e00-\u9fff]", m["texts"]["zh"]), m["meaning_id"]
        assert not re.search(r"[\u3040-\u30ff]", m["texts"]["zh"]), m["meaning_id"]
        assert re.search(r"[\u3040-\u309f]", m["texts"]["ja"]), m["meaning_id"]


def test_ja_kana_is_kana_only(parallel):
    for m in parallel["meanings"]:
        kana = m["ja_kana"]
        assert kana and _is_kana_text(kana), (m["meaning_id"], kana)
        assert re.search(r"[\u3041-\u30fa]", kana)


def test_parallel_final_punctuation(parallel):
    for m in parallel["meanings"]:
        kinds = {}
        for lang in LANGS:
            t = m["texts"][lang]
            kinds[lang] = _final_kind(t, lang)
            assert kinds[lang] is not None, (m["meaning_id"], lang, t)
            assert t[:-1] == t[:-1].rstrip(), (m["meaning_id"], lang)  # no space before the final mark
        kinds["ja_kana"] = _final_kind(m["ja_kana"], "ja_kana")
        # The sentence type (statement / question / exclamation) is the same in every language.
        assert len(set(kinds.values())) == 1, (m["meaning_id"], kinds)
        es = m["texts"]["es"]
        if kinds["es"] == "question":
            assert "¿" in es, m["meaning_id"]
        if kinds["es"] == "exclamation":
            assert "¡" in es, m["meaning_id"]


@pytest.mark.parametrize("subset", ["all", "ci", "full", "added"])
def test_final_punctuation_is_mixed(parallel, subset):
    meanings = parallel["meanings"] if subset == "all" else _block(parallel["meanings"], subset)
    for lang in (*LANGS, "ja_kana"):
        finals = Counter((m["ja_kana"] if lang == "ja_kana" else m["texts"][lang])[-1] for m in meanings)
        share = finals.most_common(1)[0][1] / len(meanings)
        assert share < MAX_FINAL_SHARE, (subset, lang, finals)
        assert len(finals) >= 2, (subset, lang, finals)


@pytest.mark.parametrize("block", sorted(SENTENCE_TYPES))
def test_sentence_type_counts(parallel, block):
    # The README's counts: the later meanings keep about the share of statements, questions and exclamations
    # of the first 38, so the pool does not shift the punctuation confound that the mix is there to break.
    kinds = Counter(_final_kind(m["texts"]["en"], "en") for m in _block(parallel["meanings"], block))
    assert (kinds["statement"], kinds["question"], kinds["exclamation"]) == SENTENCE_TYPES[block]


def test_parallel_no_duplicates(parallel):
    texts = [t for m in parallel["meanings"] for t in m["texts"].values()]
    assert len(set(texts)) == len(texts)
    kana = [m["ja_kana"] for m in parallel["meanings"]]
    assert len(set(kana)) == len(kana)
    # Stripping the final mark (the no-punctuation variant) must not create duplicates either.
    stripped = [t[:-1] for t in texts]
    assert len(set(stripped)) == len(stripped)


def test_parallel_no_shared_content_words_across_languages(parallel):
    # Within one meaning, no word of 5+ letters may be spelt identically in two Latin-script languages
    # (cognates / loanwords spelt alike inflate cross-lingual similarity for reasons other than meaning).
    for m in parallel["meanings"]:
        seen: dict[str, str] = {}
        for lang in LATIN:
            for w in set(_words(m["texts"][lang])):
                if len(w) < 5:
                    continue
                assert seen.setdefault(w, lang) == lang, (m["meaning_id"], w, seen[w], lang)


# --- paraphrases -----------------------------------------------------------------------------------------

_PARA_KEYS = ("anchor", "paraphrase", "adversarial", "unrelated")


def test_paraphrase_size_and_ids(paraphrases):
    items = paraphrases["items"]
    ids = [it["meaning_id"] for it in items]
    assert len(items) >= 32
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"p\d{2,3}", i) for i in ids)
    assert ids == [f"p{k:02d}" for k in range(1, len(ids) + 1)]  # file order = profile blocks


def test_paraphrase_final_punctuation(paraphrases):
    for it in paraphrases["items"]:
        for k in _PARA_KEYS:
            assert _final_kind(it[k], "en") is not None, (it["meaning_id"], k)


def test_paraphrase_sets_share_one_final_mark(paraphrases):
    # All four sentences of a set end alike, so in the ``punct`` variant no role differs by its final token
    # alone; each authored block keeps the first block's mix of statements, questions and exclamations.
    items = paraphrases["items"]
    kinds = [{_final_kind(it[k], "en") for k in _PARA_KEYS} for it in items]
    assert all(len(k) == 1 for k in kinds), [
        it["meaning_id"] for it, k in zip(items, kinds, strict=True) if len(k) > 1
    ]
    assert len(items) % PARAPHRASE_BLOCK == 0
    for start in range(0, len(items), PARAPHRASE_BLOCK):
        block = Counter(_final_kind(it["anchor"], "en") for it in items[start : start + PARAPHRASE_BLOCK])
        assert (block["statement"], block["question"], block["exclamation"]) == PARAPHRASE_BLOCK_TYPES, start


def test_paraphrase_roles(paraphrases):
    for it in paraphrases["items"]:
        a, p, x, u = (it[k] for k in _PARA_KEYS)
        norm = [" ".join(_words(s)) for s in (a, p, x, u)]
        assert len(set(norm)) == 4, it["meaning_id"]  # all four differ, beyond case and punctuation
        # PAWS-style adversarial: (nearly) the anchor's words, in another arrangement.
        assert _jaccard(a, x) >= MIN_ADVERSARIAL_JACCARD, (it["meaning_id"], _jaccard(a, x))
        assert _words(a) != _words(x), it["meaning_id"]
        # The unrelated sentence is another context.
        assert _jaccard(a, u) <= MAX_UNRELATED_JACCARD, (it["meaning_id"], _jaccard(a, u))
        assert 0.5 <= len(_words(u)) / len(_words(a)) <= 2.0, it["meaning_id"]


@pytest.mark.parametrize("subset", ["all", "full", "added"])
def test_paraphrases_harder_than_adversarials_lexically(paraphrases, subset):
    # On average the paraphrase must share fewer words with the anchor than the adversarial does, otherwise
    # T1 could pass on word overlap alone; in the full profile and in the pool-only sets alike.
    items = paraphrases["items"] if subset == "all" else _block(paraphrases["items"], subset)
    para = sum(_jaccard(it["anchor"], it["paraphrase"]) for it in items) / len(items)
    adv = sum(_jaccard(it["anchor"], it["adversarial"]) for it in items) / len(items)
    assert para < adv - 0.1, (para, adv)


def test_paraphrase_no_duplicates(paraphrases):
    texts = [it[k] for it in paraphrases["items"] for k in _PARA_KEYS]
    assert len(set(texts)) == len(texts)
    assert len({" ".join(_words(t)) for t in texts}) == len(texts)


# --- grid ------------------------------------------------------------------------------------------------


def test_grid_sentences(grid):
    sents = grid["sentences"]
    assert len(sents) == 32
    ids = [s["content_id"] for s in sents]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"c\d{2}", i) for i in ids)
    texts = [s["text"] for s in sents]
    assert len({" ".join(_words(t)) for t in texts}) == len(texts)
    for t in texts:
        assert 6 <= len(_words(t)) <= 12, t
        assert _final_kind(t, "en") is not None, t
        assert t.isascii(), t
    # Distinct content: no two grid sentences share more than a third of their words.
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            assert _jaccard(a, b) <= 1 / 3, (a, b)
