"""Suggested anchors from per-token gains, checked against a slow reference that maps tokens to words by decoding
prefixes (it never reads the tokenizer's offsets), and the score stage's cache of scores across map edits."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from workbench.anchors import AnchorMap
from workbench.corpus import Document, make_blocks
from workbench.scoring import block_words, suggest_anchors, token_gains

TEXT = (
    "Harry said that Voldemort fell near the castle. The owl flew on as Harry said goodbye to Voldemort, "
    "and Nearly Headless Nick drifted near the Order of the Phoenix. Later Nearly Headless Nick said nothing "
    "and the Order of the Phoenix met again while rain fell. The castle slept."
)


def _blocks(tokenizer, text=TEXT, block_size=24):
    return make_blocks([Document("d.txt", text)], tokenizer, block_size, min_tokens=1)


def _scores(blocks, gain_of_token) -> pd.DataFrame:
    """A scores table whose gain at row pos=t (predicting token t+1) is ``gain_of_token(block, t + 1)``."""
    rows = [
        {"block": b.index, "pos": t, "gain_logprob": float(gain_of_token(b, t + 1))}
        for b in blocks
        for t in range(len(b) - 1)
    ]
    return pd.DataFrame(rows)


def _reference_word_gains(tokenizer, blocks, scores) -> dict[str, list[float]]:
    """Every ASCII word of every block -> the summed gains of the tokens sharing a character with it, found by
    decoding growing prefixes of the block's ids (token i spans [len(decode(ids[:i])), len(decode(ids[:i+1])))).
    Words touching the block's first token (nothing predicted it) are left out."""
    out: dict[str, list[float]] = {}
    for b in blocks:
        ids = [int(i) for i in b.input_ids]
        assert tokenizer.decode(ids) == b.text, "the reference needs a lossless tokenizer"
        ends = [len(tokenizer.decode(ids[: i + 1])) for i in range(len(ids))]
        spans = [(0 if i == 0 else ends[i - 1], ends[i]) for i in range(len(ids))]
        gain = {int(r.pos) + 1: r.gain_logprob for r in scores[scores["block"] == b.index].itertuples()}
        for m in re.finditer(r"[A-Za-z]+", b.text):
            toks = [i for i, (s, e) in enumerate(spans) if s < m.end() and e > m.start()]
            if 0 in toks:
                continue
            out.setdefault(m.group(0), []).append(sum(gain[i] for i in toks))
    return out


def test_word_gains_match_a_slow_reference(bpe_tokenizer):
    blocks = _blocks(bpe_tokenizer)
    rng = np.random.default_rng(0)
    table = {(b.index, t): rng.normal() for b in blocks for t in range(len(b))}
    scores = _scores(blocks, lambda b, t: table[(b.index, t)])
    ref = _reference_word_gains(bpe_tokenizer, blocks, scores)
    seen: dict[str, list[float]] = {}
    for b in blocks:
        for w in block_words(b, token_gains(b, scores[scores["block"] == b.index])):
            if np.isfinite(w.gain):
                seen.setdefault(w.text, []).append(w.gain)
    assert seen.keys() == ref.keys()
    for word, gains in ref.items():
        assert seen[word] == pytest.approx(gains), word

    # the suggestion table's counts and means agree with the reference for every word it lists
    sugg = suggest_anchors(scores, blocks, top=None, min_count=1, phrases=False)
    assert set(sugg["kind"]) == {"word"}
    for r in sugg.itertuples():
        assert r.count == len(ref[r.word]) and r.mean_gain == pytest.approx(np.mean(ref[r.word])), r.word
    # every capitalised word, and every lower-case word of 4+ letters, is listed ("The" opens sentences only)
    expect = {w for w in ref if (w[:1].isupper() or len(w) >= 4) and w != "The"}
    assert set(sugg["word"]) == expect


def test_single_token_words_and_a_words_first_token_count(bpe_tokenizer):
    """Byte-level BPE puts the leading space in the word's first token: " said" is one token, and most of
    " Voldemort"'s gain sits on its first token; both must be credited in full."""
    blocks = _blocks(bpe_tokenizer, block_size=512)
    said = bpe_tokenizer.convert_tokens_to_ids(bpe_tokenizer.tokenize(" said"))
    assert len(said) == 1
    vold = bpe_tokenizer(" Voldemort", add_special_tokens=False)["input_ids"]
    vold_first = set(np.flatnonzero(blocks[0].input_ids == vold[0]).tolist())

    def gain(b, t):
        if int(b.input_ids[t]) == said[0]:
            return 2.0
        return 10.0 if t in vold_first else 1.0

    sugg = suggest_anchors(_scores(blocks, gain), blocks, top=None, min_count=2).set_index("word")
    assert sugg.loc["said", "mean_gain"] == pytest.approx(2.0)
    assert sugg.loc["said", "count"] == 3
    assert sugg.loc["Voldemort", "mean_gain"] == pytest.approx(10.0 + (len(vold) - 1))
    assert "fell" in sugg.index and "near" in sugg.index


def test_phrases_are_suggested_when_reinforcement_binds_their_words(bpe_tokenizer):
    blocks = _blocks(bpe_tokenizer, block_size=512)
    toks = bpe_tokenizer.convert_ids_to_tokens(blocks[0].input_ids.tolist())
    boosted = {"ĠHead", "less", "ĠPhoenix"}
    sugg = suggest_anchors(_scores(blocks, lambda b, t: 3.0 if toks[t] in boosted else 0.0), blocks, top=None)
    phrases = sugg[sugg["kind"] == "phrase"].set_index("word")
    assert {"Nearly Headless Nick", "Order of the Phoenix"} <= set(phrases.index)
    assert phrases.loc["Nearly Headless Nick", "count"] == 2 and phrases.loc["Nearly Headless Nick", "mean_gain"] == 6.0
    assert "[Nearly Headless Nick]" in phrases.loc["Nearly Headless Nick", "examples"]
    assert "Headless" not in set(sugg["word"])  # seen only inside the phrase
    assert not any(w.startswith(("The ", "Later ")) for w in phrases.index)
    # a phrase is not suggested when nothing after its first word was boosted ("The castle" is no name either)
    flat = suggest_anchors(_scores(blocks, lambda b, t: 0.3), blocks, top=None)
    assert (flat["kind"] == "phrase").sum() == 0
    # words inside an anchor break phrases and are not suggested
    amap = AnchorMap({"Nick": ["Tom"], "Phoenix": ["bird"]})
    covered = suggest_anchors(_scores(blocks, lambda b, t: 3.0 if toks[t] in boosted else 0.0), blocks, amap, top=None)
    assert "Nearly Headless" in set(covered["word"]) and not covered["word"].str.contains("Nick|Phoenix").any()


def test_score_stage_follows_map_edits_without_rescoring_and_an_empty_map_scores(tmp_path):
    """The suggestions describe the current map (not the one scored first); the per-token scores are reused.
    A new target starts from an empty map: reinforce and score run, labels refuse with a clear message."""
    import json

    from helpers import tiny_config

    from workbench.cli import main
    from workbench.config import config_from_dict
    from workbench.errors import WorkbenchError
    from workbench.run import Run

    raw = tiny_config(tmp_path / "in", anchors={}, scoring={"max_blocks": None, "batch_size": 4})
    cfg = config_from_dict(raw)
    run = Run(cfg, tmp_path / "run", progress=False, log=None)
    with pytest.raises(WorkbenchError, match="no anchors.*labels stage needs at least one"):
        run.run()
    assert not (tmp_path / "run" / "reinforced").exists()  # refused before any training
    run.run(stages=("reinforce", "score"))
    first = pd.read_csv(tmp_path / "run" / "suggested_anchors.csv")
    assert "Hagrid" in set(first["word"]) and len(run.scored_blocks) == len(run.corpus_blocks) > 8
    mtime = (tmp_path / "run" / "scores.parquet").stat().st_mtime_ns

    # the curator adds Hagrid: the stage is stale, reruns without a model forward, and Hagrid is gone
    anchors_path = tmp_path / "in" / "anchors.json"
    anchors_path.write_text(json.dumps({"anchors": {"Hagrid": ["the groundskeeper"]}}))
    run2 = Run(config_from_dict(raw), tmp_path / "run", progress=False, log=None)
    assert not run2.is_done("score")
    run2.pair = None  # a model forward would fail: only the suggestions may be redone
    run2.score()
    assert run2.is_done("score")
    assert (tmp_path / "run" / "scores.parquet").stat().st_mtime_ns == mtime
    second = pd.read_csv(tmp_path / "run" / "suggested_anchors.csv")
    assert "Hagrid" not in set(second["word"]) and "Hermione" in set(second["word"])

    # the CLI gives the same message and exit code 2 for labels on an empty map
    anchors_path.write_text(json.dumps({"format": "whp-anchors/1", "anchors": {}}))
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["labels", str(tmp_path / "c.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
