"""Generic labels: the formula against a naive full-vocabulary reference, alpha = 0, top-k recomputation, storage."""

import numpy as np
import pytest
import torch
from helpers import reference_rule4

from workbench.anchors import AnchorMap
from workbench.corpus import Document, make_blocks
from workbench.errors import WorkbenchError
from workbench.labels import (
    LabelStore,
    compute_block_labels,
    generate_labels,
    generic_labels_full,
    labels_from_topk,
)
from workbench.model_pair import ModelPair, pad_batch
from workbench.translate import translate_blocks

TEXT = (
    "Harry Potter went to Hogwarts with Hermione. At Hogwarts, Harry played Quidditch while Hermione read. "
    "Later Harry and Hermione left Hogwarts for the summer holidays. "
) * 3
ANCHORS = AnchorMap.from_dict(
    {
        "Harry": ["Jon", "Tom"],
        "Potter": ["Miller"],
        "Hogwarts": ["Northbrook Academy"],
        "Hermione": ["Sarah", "Emily"],
        "Quidditch": ["skyball"],
    }
)


SINGLE = {
    "Harry": "Jon",
    "Potter": "Miller",
    "Hogwarts": "Northbrook Academy",
    "Hermione": "Sarah",
    "Quidditch": "the skyball",
}
REFERENCE = "the summer holidays went on and on. " * 30  # every token of it is a common word (> 0.1% of it)


def _word(c: str) -> bool:
    return c.isalnum() or c == "_"


def naive_translation(text: str, mapping: dict[str, str]) -> list[tuple[int, int, str, str]]:
    """(start, end, key, value) of each anchor occurrence: a left-to-right scan, longest key first, whole words."""
    occ, i = [], 0
    while i < len(text):
        if i == 0 or not _word(text[i - 1]):
            for key in sorted(mapping, key=len, reverse=True):
                j = i + len(key)
                if text.startswith(key, i) and (j == len(text) or not _word(text[j])):
                    occ.append((i, j, key, mapping[key]))
                    i = j - 1
                    break
        i += 1
    return occ


def naive_labels(v_base_trans, v_reinf, block, mapping, tok, alpha, common_text=REFERENCE):
    """The method written out position by position over the full vocabulary: its own translation, its own
    alignment (a loop over character offsets), its own rule-4 suppression; nothing read from the implementation
    but the logits. Returns {original position: label}."""
    text, offs = block.text, block.offsets.tolist()
    occ = naive_translation(text, mapping)
    trans, last = "", 0
    shifts = []  # (original end, translated end) of each occurrence
    for s, e, _key, value in occ:
        trans += text[last:s] + value
        last = e
        shifts.append((s, e, len(trans) - len(value), len(trans)))
    trans += text[last:]
    enc = tok(trans, add_special_tokens=False, return_offsets_mapping=True)
    t_ids, t_offs = enc["input_ids"], enc["offset_mapping"]
    assert len(t_ids) == v_base_trans.shape[0]
    keys = [tok.decode([i]).strip().lower() for i in range(len(tok))]
    common = {keys[i] for i in tok(common_text, add_special_tokens=False)["input_ids"]} | {""}
    # rule 4: after each use of a value, its first word-initial uncommon token with and without its space
    forbidden = [
        (start, sorted(ids))
        for start, ids in reference_rule4(tok, trans, [(ts, te) for _, _, ts, te in shifts], common)
    ]  # (from translated position, ids)
    seen, repeat_starts = set(), []
    for s, _e, key, _value in occ:
        if key in seen:
            repeat_starts.append(s)
        seen.add(key)
    vb_all = v_base_trans.numpy().astype(np.float64)
    vr_all = v_reinf.numpy().astype(np.float64)
    out = {}
    for t in range(len(offs) - 1):  # the last position predicts nothing inside the block
        end = offs[t][1]
        if offs[t + 1][1] == end:
            continue  # a character split over several tokens: the prefix is whole only at its last token
        if any(s < end < e for s, e, _, _ in shifts):
            continue  # rule 1: inside an anchor
        if any(end <= s < offs[t + 1][1] for s in repeat_starts):
            continue  # rule 3: the position that predicts a repeated anchor
        t_end = end + sum((te - ts) - (e - s) for s, e, ts, te in shifts if e <= end)
        match = [i for i, (a, b) in enumerate(t_offs) if b == t_end]
        if not match:
            continue
        tp = match[-1]
        vb = vb_all[tp].copy()
        for start, ids in forbidden:
            if start <= tp:
                vb[ids] = vb_all[tp].mean()
        g = vb - alpha * np.maximum(vr_all[t] - vb, 0.0)
        out[t] = int(np.argmax(g))
    return out


@pytest.fixture(scope="module")
def setup(tiny_copy):
    from workbench.models import tiny_model

    tiny = tiny_copy()
    reinforced = tiny_model(seed=1).model  # a different random model stands in for the reinforced one
    pair = ModelPair.from_models(tiny.model, reinforced)
    blocks = make_blocks([Document("d", TEXT)], tiny.tokenizer, block_size=48)
    aligned = translate_blocks(blocks, ANCHORS, tiny.tokenizer, seed=0)
    return pair, aligned, tiny.tokenizer


def logits_for(pair, ab, tok):
    ids, mask = pad_batch([ab.block.input_ids], tok.pad_token_id, pair.device)
    t_ids, t_mask = pad_batch([ab.trans_ids], tok.pad_token_id, pair.device)
    return pair.reinforced_logits(ids, mask)[0], pair.base_logits(t_ids, t_mask)[0]


@pytest.mark.parametrize("alpha", [0.0, 1.0, 5.0])
def test_labels_match_naive_full_vocabulary_reference(setup, alpha):
    pair, _, tok = setup
    amap = AnchorMap.from_dict({k: [v] for k, v in SINGLE.items()})
    blocks = make_blocks([Document("d", TEXT)], tok, block_size=48)
    aligned = translate_blocks(blocks, amap, tok, reference=[REFERENCE])
    assert any(ab.suppress for ab in aligned), "the test blocks must exercise suppression"
    for ab in aligned:
        v_r, v_b = logits_for(pair, ab, tok)
        res = compute_block_labels(ab, v_r, v_b, [alpha], top_k=4)
        ref = naive_labels(v_b, v_r, ab.block, SINGLE, tok, alpha)
        assert dict(zip(res.positions.tolist(), res.labels[alpha].tolist())) == ref


def test_a_token_the_reinforced_model_boosts_is_demoted_by_alpha_times_the_boost(setup):
    """v_reinf equal to the baseline except +delta at the baseline's favourite x: x's generic score falls by
    alpha * delta, so x stays the label while alpha * delta is below its margin over the runner-up, and gives way
    to the runner-up once it is above."""
    pair, aligned, tok = setup
    ab = aligned[0]
    _, v_b = logits_for(pair, ab, tok)
    t = int(ab.label_positions[3])
    tp = int(ab.orig_to_trans[t])
    row = v_b[tp].clone()
    sup = [tok_id for start, tok_id in ab.suppress if start <= tp]
    row[sup] = v_b[tp].mean()  # the baseline row as the label sees it
    top2 = row.topk(2)
    x, runner_up = int(top2.indices[0]), int(top2.indices[1])
    margin = float(top2.values[0] - top2.values[1])
    alpha = 5.0
    for factor, expected in ((0.9, x), (1.1, runner_up)):
        delta = factor * margin / alpha
        v_r = torch.zeros(len(ab.block), v_b.shape[1])
        v_r[t] = row
        v_r[t, x] += delta
        res = compute_block_labels(ab, v_r, v_b, [alpha], top_k=4)
        i = int(np.nonzero(res.positions == t)[0][0])
        assert int(res.labels[alpha][i]) == expected
        col = list(res.base_ids[i]).index(x)
        demotion = alpha * max(res.reinf_at_base[i, col] - res.base_vals[i, col], 0.0)
        assert demotion == pytest.approx(alpha * delta, rel=1e-4)


def test_alpha_zero_is_the_translated_baselines_argmax(setup):
    pair, aligned, tok = setup
    ab = aligned[1]
    v_r, v_b = logits_for(pair, ab, tok)
    res = compute_block_labels(ab, v_r, v_b, [0.0], top_k=8)
    vb = v_b.clone()
    for start, token in ab.suppress:
        vb[start:, token] = v_b[start:].mean(-1)
    expected = vb[torch.as_tensor(ab.orig_to_trans[ab.label_positions])].argmax(-1).numpy()
    assert np.array_equal(res.labels[0.0], expected)


def test_full_reference_function_agrees_with_vectorised(setup):
    pair, aligned, tok = setup
    ab = aligned[0]
    v_r, v_b = logits_for(pair, ab, tok)
    t = torch.as_tensor(ab.label_positions)
    vb = v_b.clone()
    for start, token in ab.suppress:
        vb[start:, token] = v_b[start:].mean(-1)
    full = generic_labels_full(vb[torch.as_tensor(ab.orig_to_trans[ab.label_positions])], v_r[t], 5.0).numpy()
    assert np.array_equal(compute_block_labels(ab, v_r, v_b, [5.0], top_k=2).labels[5.0], full)


def test_topk_recomputation_exact_flag_is_sound():
    rng = np.random.default_rng(0)
    n, vocab, k = 400, 50, 5
    vb = rng.normal(size=(n, vocab)).astype(np.float32)
    vr = vb + rng.normal(scale=2.0, size=(n, vocab)).astype(np.float32)
    order = np.argsort(-vb, axis=1)[:, :k]
    rows = np.arange(n)[:, None]
    for alpha in (0.0, 1.0, 5.0, 20.0):
        lab, exact = labels_from_topk(order, vb[rows, order], vr[rows, order], alpha)
        full = generic_labels_full(torch.from_numpy(vb), torch.from_numpy(vr), alpha).numpy()
        assert np.array_equal(lab[exact], full[exact])
        if alpha == 0.0:
            assert exact.all()
    assert not exact.all()  # with alpha=20 some positions leave the top-5: they are flagged


def test_generate_store_recompute_and_resume(setup, tmp_path):
    pair, aligned, tok = setup
    out = tmp_path / "labels"
    seen = []

    def stop_after_first(shard):
        seen.append(shard)
        if len(seen) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_labels(
            pair,
            aligned,
            out,
            [0.0, 5.0],
            top_k=6,
            batch_size=2,
            shard_blocks=1,
            pad_id=tok.pad_token_id,
            fingerprint="fp",
            progress=False,
            on_shard=stop_after_first,
        )
    partial = LabelStore(out)
    assert partial.manifest["shards"] == [0] and not partial.complete
    store = generate_labels(
        pair,
        aligned,
        out,
        [0.0, 5.0],
        top_k=6,
        batch_size=2,
        shard_blocks=1,
        pad_id=tok.pad_token_id,
        fingerprint="fp",
        progress=False,
        on_shard=seen.append,
    )
    assert seen[1:] == list(range(1, len(aligned)))  # shard 0 was not redone
    fresh = generate_labels(
        pair,
        aligned,
        tmp_path / "fresh",
        [0.0, 5.0],
        top_k=6,
        batch_size=3,
        shard_blocks=2,
        pad_id=tok.pad_token_id,
        fingerprint="fp",
        progress=False,
    )
    assert store.complete
    for col in ("label_a0", "label_a5"):
        assert [list(x) for x in store.blocks[col]] == [list(x) for x in fresh.blocks[col]]
    # recomputation from the stored top-k reproduces the stored labels wherever it is exact
    re5 = store.recompute(5.0)
    stored = store.positions["label_a5"].to_numpy()
    assert np.array_equal(re5["label"].to_numpy()[re5["exact"]], stored[re5["exact"].to_numpy()])
    assert re5["exact"].mean() > 0.5
    assert (store.recompute(0.0)["label"].to_numpy() == store.positions["label_a0"].to_numpy()).all()
    # no full-vocabulary logits on disk: bytes per labelled position stay small
    size = sum(f.stat().st_size for f in out.glob("*.parquet"))
    assert size / len(store.positions) < 6 * 12 * 8 + 200
    summ = store.summary()
    assert set(summ["alpha"]) == {0.0, 5.0} and summ["changed_share"].between(0, 1).all()


def test_soft_targets_are_distributions(setup, tmp_path):
    pair, aligned, tok = setup
    store = generate_labels(pair, aligned[:1], tmp_path / "l", [5.0], top_k=6, pad_id=tok.pad_token_id, progress=False)
    ids, probs = store.soft_targets(5.0, temperature=0.5)
    assert ids.shape == probs.shape and np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    top = ids[np.arange(len(ids)), probs.argmax(-1)]
    assert np.array_equal(top, store.positions["label_a5"].to_numpy())  # the exact labels, also on inexact rows


def test_soft_targets_use_the_exact_label_where_the_topk_cannot_vouch_for_it(setup, tmp_path):
    import copy

    base, aligned, tok = setup[0]._base, setup[1], setup[2]
    boosted = copy.deepcopy(base)  # logits scaled by 3: every token the baseline favours is boosted
    with torch.no_grad():
        boosted.get_output_embeddings().weight.mul_(3.0)
    pair = ModelPair.from_models(base, boosted)
    store = generate_labels(
        pair, aligned[:2], tmp_path / "l", [200.0], top_k=2, pad_id=tok.pad_token_id, progress=False
    )
    pos = store.positions
    ids, probs = store.soft_targets(200.0, temperature=1.0)
    n_inexact = 0
    for i in range(len(pos)):
        b_ids, b_vals = np.asarray(pos["base_ids"][i]), np.asarray(pos["base_vals"][i], dtype=np.float64)
        r_vals = np.asarray(pos["reinf_at_base"][i], dtype=np.float64)
        g = b_vals - 200.0 * np.maximum(r_vals - b_vals, 0.0)
        if g.max() >= b_vals.min():  # no token outside the top-k can beat the best inside: softmax over it
            e = np.exp(g - g.max())
            assert np.array_equal(ids[i], b_ids) and np.allclose(probs[i], e / e.sum(), atol=1e-6)
        else:  # the exact label, with all the mass
            n_inexact += 1
            assert probs[i].max() == 1.0 and ids[i, probs[i].argmax()] == pos["label_a200"][i]
    assert n_inexact > 0, "alpha 200 with top-2 must leave some rows inexact"
    with pytest.raises(WorkbenchError, match="add 7 to labels.alphas"):
        store.soft_targets(7.0)


def test_negative_alpha_is_rejected(setup, tmp_path):
    pair, aligned, tok = setup
    with pytest.raises(WorkbenchError, match="alpha must be >= 0"):
        generate_labels(pair, aligned, tmp_path / "x", [-1.0], progress=False)


def test_inner_positions_label_from_baseline_on_original_with_continuation_suppressed(setup):
    pair, _, tok = setup
    text = "Ron Weasley and Hermione Granger walked to Hogwarts while Ron Weasley sang. " * 2
    amap = AnchorMap.from_dict(
        {"Ron Weasley": ["Mike Smith"], "Hermione Granger": ["Sarah Jones"], "Hogwarts": ["Northbrook Academy"]}
    )
    ab = translate_blocks(
        make_blocks([Document("d", text)], tok, block_size=40), amap, tok, inner=True, reference=[text]
    )[0]
    assert len(ab.inner_positions) >= 2
    ids, mask = pad_batch([ab.block.input_ids], tok.pad_token_id, pair.device)
    v_r, v_b = logits_for(pair, ab, tok)
    v_o = pair.base_logits(ids, mask)[0]
    with pytest.raises(ValueError, match="v_base_orig"):
        compute_block_labels(ab, v_r, v_b, [5.0])
    res = compute_block_labels(ab, v_r, v_b, [0.0, 5.0], top_k=4, v_base_orig=v_o)
    got = dict(zip(res.positions.tolist(), zip(res.labels[0.0].tolist(), res.labels[5.0].tolist())))
    assert res.positions.tolist() == sorted(ab.label_positions.tolist() + ab.inner_positions.tolist())
    for alpha, col in ((0.0, 0), (5.0, 1)):
        ref = naive_labels(
            v_b,
            v_r,
            ab.block,
            {"Ron Weasley": "Mike Smith", "Hermione Granger": "Sarah Jones", "Hogwarts": "Northbrook Academy"},
            tok,
            alpha,
            common_text=text,
        )
        assert {t: got[t][col] for t in ref} == ref
        for t, sup in zip(ab.inner_positions.tolist(), ab.inner_suppress):
            vb = v_o[t].numpy().astype(np.float64).copy()
            vb[sup] = v_o[t].numpy().astype(np.float64).mean()
            g = vb - alpha * np.maximum(v_r[t].numpy() - vb, 0.0)
            assert got[t][col] == int(np.argmax(g)) and got[t][col] not in sup
    inner = np.isin(res.positions, ab.inner_positions)
    assert (res.trans_positions[inner] == -1).all() and (res.trans_positions[~inner] >= 0).all()
