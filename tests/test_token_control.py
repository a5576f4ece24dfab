"""The token-identity control can decide (CLAIMS.md; the protocol issue, item 3): labels carried only by the last
token's identity are explained by tokens, labels carried by the content are not."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.claims import registry
from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.evaluate import decide_measured, measure, select
from benchmark.core.schema import Sample

LANGS = ["en", "de", "fr", "ja"]
LAYERS = ["emb", *(f"block{i}" for i in range(6)), "final_norm"]


def planted(where: str, n_meanings: int = 10, seed: int = 0, template: str = "bare") -> ClaimData:
    """Early blocks carry language structure; ``where`` says where it comes from.

    ``token``: every input of a language ends on that language's token, the early latents are that token's
    embedding plus noise, and the mean of the tokens carries the language too (a model that only echoes tokens).
    ``content``: the early latents carry the language, but the last token and the bag of tokens do not (the
    last tokens are random per input).
    ``last``: the last content token carries the language and the early latents echo it, but the bag of tokens
    does not.
    """
    rng = np.random.default_rng(seed)
    d = 16
    lang_tok = rng.normal(size=(len(LANGS), d)) * 3.0
    meaning_dir = rng.normal(size=(n_meanings, d))
    samples, rows, tok_last, tok_mean = [], [], [], []
    for m in range(n_meanings):
        for i, lang in enumerate(LANGS):
            samples.append(
                Sample(
                    id=f"m{m}-{lang}",
                    modality="text",
                    text=f"{m}{lang}",
                    language=lang,
                    meaning_id=f"m{m}",
                    variant="nopunct",
                )
            )
            token = lang_tok[i] if where in ("token", "last") else rng.normal(size=d) * 3.0
            last = token + 0.3 * rng.normal(size=d)
            bag = (token if where == "token" else rng.normal(size=d) * 3.0) + 0.3 * rng.normal(size=d)
            language = lang_tok[i] if where == "content" else last
            early = language + 0.5 * meaning_dir[m] + 0.4 * rng.normal(size=d)
            middle = meaning_dir[m] + 0.2 * lang_tok[i] + 0.4 * rng.normal(size=d)
            late = lang_tok[i] + 0.5 * meaning_dir[m] + 0.4 * rng.normal(size=d)
            rows.append([last, early, early, middle, middle, late, late, late])
            tok_last.append(last)
            tok_mean.append(bag)
    return ClaimData(
        latents=np.asarray(rows, dtype=np.float32),
        layers=LAYERS,
        samples=samples,
        model="synthetic",
        model_kind="text-lm",
        template=template,
        controls={"tok_last": np.asarray(tok_last, np.float32), "tok_mean": np.asarray(tok_mean, np.float32)},
    )


@pytest.fixture(scope="module")
def t3():
    return registry.get_claim("T3-text-language-early-late")


def _decide(spec, data):
    measured = measure(spec, select(spec, data, "nopunct"), Budget(100, 10, "test"), np.random.default_rng(1))
    return measured, decide_measured(spec, measured, model="synthetic", reference_verdict=None)


def test_labels_in_the_last_token_are_explained_by_tokens(t3) -> None:
    measured, decision = _decide(t3, planted("token"))
    assert decision.explained_by_tokens is True
    assert decision.verdict != "holds", decision.reason
    assert "explained by tokens" in decision.reason or decision.verdict != "holds"
    assert set(measured.control_values) >= {"compared", "tok_last", "tok_mean"}


def test_labels_in_the_content_are_not_explained_by_tokens(t3) -> None:
    measured, decision = _decide(t3, planted("content"))
    assert decision.explained_by_tokens is False, measured.control_values
    assert decision.verdict == "holds", decision.reason


def test_missing_controls_are_named_not_invented(t3) -> None:
    data = planted("content")
    data.controls["tok_mean"][0] = np.nan  # e.g. a speech sample without embeddings in the decoder input
    data.control_note = "audio enters through cross-attention"
    measured, _ = _decide(t3, data)
    assert "tok_mean" not in measured.control_values and "tok_last" in measured.control_values
    assert "cross-attention" in measured.control_note


def test_the_last_content_token_decides_under_bare_only(t3) -> None:
    """CLAIMS.md: under ``bare`` the last token's embedding and the mean of the tokens are the controls; under
    ``shared-suffix`` the mean of the content tokens alone. So an effect carried by the last content token is
    explained by tokens under ``bare``, and under ``shared-suffix`` it is reported there but does not decide."""
    measured, decision = _decide(t3, planted("last", template="bare"))
    assert decision.explained_by_tokens is True and decision.verdict != "holds", decision.reason
    measured, decision = _decide(t3, planted("last", template="shared-suffix"))
    assert measured.deciding_controls == ("tok_mean",)
    assert {"tok_last", "tok_mean"} <= set(measured.control_margins), "tok_last is still reported"
    assert "tok_last reported, not deciding under shared-suffix" in measured.control_note
    assert decision.explained_by_tokens is False and decision.verdict == "holds", decision.reason
