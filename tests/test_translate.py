"""Translation and alignment rules, on a byte-level BPE tokenizer and a SentencePiece one."""

import numpy as np
import pytest
from helpers import reference_rule4, vocab_pieces

from workbench.anchors import AnchorMap
from workbench.corpus import Document, make_blocks
from workbench.translate import translate_blocks

ANCHORS = AnchorMap.from_dict(
    {
        "Harry": ["Jon"],
        "Potter": ["Miller"],
        "Hogwarts": ["Northbrook Academy"],
        "Hermione": ["Sarah"],
        "Quidditch": ["skyball"],
        "Ron Weasley": ["Mike Smith"],
    }
)


@pytest.fixture(params=["bpe", "sentencepiece"])
def tok(request, bpe_tokenizer, sp_tokenizer):
    return bpe_tokenizer if request.param == "bpe" else sp_tokenizer


def aligned(tok, text, block_size=512, seed=0):
    blocks = make_blocks([Document("d", text)], tok, block_size=block_size, min_tokens=1)
    return blocks, translate_blocks(blocks, ANCHORS, tok, seed=seed)


def prefix(text, offsets, i):
    return text[: offsets[i, 1]]


def check_alignment_invariant(ab):
    """Every labelled position's original prefix translates exactly into its translated prefix."""
    b = ab.block
    for t in ab.label_positions:
        tp = ab.orig_to_trans[t]
        assert ANCHORS.translate(prefix(b.text, b.offsets, t), 0, b.index) == ab.trans_text[: ab.trans_offsets[tp, 1]]


def test_plain_text_aligns_one_to_one(tok):
    _, (ab,) = aligned(tok, "The quick brown fox jumps over the lazy dog.")
    n = len(ab.block)
    assert np.array_equal(ab.orig_to_trans[:-1], np.arange(n - 1))
    assert ab.orig_to_trans[-1] == -1  # the last position has no next token in the block
    assert ab.trans_text == ab.block.text


def test_multi_token_anchor_inside_positions_unlabelled_and_last_token_maps_to_last(tok):
    _, (ab,) = aligned(tok, "They went to Hogwarts by train today.")
    b = ab.block
    s = b.text.index("Hogwarts")
    e = s + len("Hogwarts")
    ends = b.offsets[:, 1]
    inside = np.nonzero((ends > s) & (ends < e))[0]
    assert len(inside) >= 1, "the test needs Hogwarts split into several tokens"
    assert (ab.orig_to_trans[inside] == -1).all()
    last = int(np.nonzero(ends == e)[0][-1])
    tp = ab.orig_to_trans[last]
    assert tp >= 0 and ab.trans_text[: ab.trans_offsets[tp, 1]].endswith("Northbrook Academy")
    check_alignment_invariant(ab)


def test_possessives_and_punctuation_next_to_anchor(tok):
    _, (ab,) = aligned(tok, "Harry's wand, Hermione's cat; Quidditch! (Harry)")
    assert ab.trans_text == "Jon's wand, Sarah's cat; skyball! (Jon)"
    check_alignment_invariant(ab)


def test_repeated_anchor_position_that_predicts_it_gets_no_label(tok):
    text = "Harry waved and then Harry smiled at everyone here."
    _, (ab,) = aligned(tok, text)
    b = ab.block
    second = text.index("Harry", 1)
    ends = b.offsets[:, 1]
    predicting = int(np.searchsorted(ends, second, side="right")) - 1
    assert ab.orig_to_trans[predicting] == -1
    first_pred_exists = ends[0] <= text.index("Harry")  # first occurrence at the block start: nothing predicts it
    assert not first_pred_exists
    # the position predicting the word after the repeat is labelled normally
    after = int(np.nonzero(ends == second + len("Harry"))[0][-1])
    assert ab.orig_to_trans[after] >= 0
    assert [o.repeated for o in ab.occurrences] == [False, True]
    check_alignment_invariant(ab)


def vocab_groups(tok):
    """token id -> its text stripped and lower-cased, by decoding the whole vocabulary (written out for the tests)."""
    return [tok.decode([i]).strip().lower() for i in range(len(tok))]


def expected_forbidden(tok, trans_text, values, common_words):
    """Rule 4 written out (tests/helpers.py) for every use of each of ``values`` in ``trans_text``."""
    spans = []
    for value in values:
        at = trans_text.find(value)
        while at >= 0:
            spans.append((at, at + len(value)))
            at = trans_text.find(value, at + 1)
    return reference_rule4(tok, trans_text, spans, common_words)


def assert_mask_matches(ab, expected, vocab):
    mask = ab.suppression_mask(vocab)
    for p in range(len(ab.trans_ids)):
        want = set().union(*[ids for start, ids in expected if start <= p])
        assert set(np.nonzero(mask[p])[0].tolist()) == want, f"position {p}"
    return mask


def test_suppression_targets_the_values_distinctive_token_and_its_variants(tok):
    amap = AnchorMap.from_dict({"Hermione": ["Sarah"], "Padfoot": ["the old Dog"], "Hogwarts": ["the school"]})
    text = (
        'Padfoot barked at Hermione.\n"Hermione," said Ron to Padfoot at Hogwarts. Then the old man went to Hogwarts.'
    )
    reference = ["the old man went to the school and the old house. " * 30]  # common: the, old, school...
    blocks = make_blocks([Document("d", text)], tok, block_size=512, min_tokens=1)
    (ab,) = translate_blocks(blocks, amap, tok, reference=reference)
    assert ab.trans_text == (
        'the old Dog barked at Sarah.\n"Sarah," said Ron to the old Dog at the school. '
        "Then the old man went to the school."
    )
    # every token of the short, repetitive reference makes up far more than 0.1% of it: all are common words
    keys = vocab_groups(tok)
    common = {keys[i] for i in tok(reference[0], add_special_tokens=False)["input_ids"]} | {""}
    expected = expected_forbidden(tok, ab.trans_text, ["Sarah", "the old Dog", "the school"], common)
    if tok.is_fast and "Sarah" in tok.get_vocab():  # a real vocabulary: two uses of each name; "the school" is common
        assert len(expected) == 4
    mask = assert_mask_matches(ab, expected, len(tok))
    the = {i for i, k in enumerate(keys) if k in ("the", "old", "school")}
    assert not mask[:, sorted(the)].any()  # function words and common words are never forbidden
    pieces = vocab_pieces(tok)
    sarah = {i for i, p in enumerate(pieces) if p in ("Sarah", " Sarah")}
    assert mask[-1, sorted(sarah)].all()  # " Sarah" after a space and "Sarah" after a quote are both forbidden
    dog = {i for i, p in enumerate(pieces) if p.strip() == "dog"}
    assert not mask[:, sorted(dog)].any()  # "Dog" in its own case only
    # strictly after the position holding the value's first token (the authors' rule): the first use of each
    # value leaves its own first position free
    for start, ids in expected:
        if all(s >= start for s, other in expected if other == ids):
            assert not mask[start - 1, sorted(ids)].any() and mask[start, sorted(ids)].all()


# generic values of the Harry Potter pack whose first word is an ordinary word in another case, or whose first
# token is a common word followed by a fragment of the same word (SmolLM2's tokenizer: " An"+"ita", " For"+"get",
# " By"+"r"+"ne", " El"+"m", " Low"+"e", " North"+"brook")
NAMED = {
    "Parvati": ["Anita"],
    "Gryffindor": ["Red House"],
    "Hogwarts": ["Northbrook Academy"],
    "Harry": ["Mark"],
    "Snape": ["Lowe"],
    "Voldemort": ["the dark wizard"],
    "Obliviate": ["Forget"],
    "Hufflepuff": ["Elm House"],
    "Finnigan": ["Byrne"],
}
NAMED_TEXT = (
    "Parvati met Voldemort in Gryffindor. Harry and Snape walked to Hogwarts; Obliviate, said Finnigan in "
    "Hufflepuff. Later Parvati saw Voldemort again at Hogwarts with Harry and Snape and Finnigan.\n"
    "The dark night fell; a red moon over the north tower, a low mark on the market wall. Forget it, Anita, "
    "he said by the elm, for the house of the lord."
)
# common words of the reference (each far above 0.1% of it): "an", "for" and "by" among them
NAMED_REFERENCE = "the man and an old dog went for a walk by the river with a friend of his. " * 30


def test_rule4_named_cases_against_the_reference_loop(tok):
    blocks = make_blocks([Document("d", NAMED_TEXT)], tok, block_size=512, min_tokens=1)
    (ab,) = translate_blocks(blocks, AnchorMap.from_dict(NAMED), tok, reference=[NAMED_REFERENCE])
    keys = vocab_groups(tok)
    common = {keys[i] for i in tok(NAMED_REFERENCE, add_special_tokens=False)["input_ids"]} | {""}
    values = [v for (v,) in NAMED.values()]
    assert_mask_matches(ab, expected_forbidden(tok, ab.trans_text, values, common), len(tok))


def test_rule4_never_suppresses_ordinary_words_or_fragments(bpe_tokenizer):
    tok = bpe_tokenizer
    blocks = make_blocks([Document("d", NAMED_TEXT)], tok, block_size=512, min_tokens=1)
    (ab,) = translate_blocks(blocks, AnchorMap.from_dict(NAMED), tok, reference=[NAMED_REFERENCE])
    pieces = vocab_pieces(tok)
    ids = {p: i for i, p in enumerate(pieces)}
    forbidden = {pieces[t] for _, t in ab.suppress}
    # the values' own word-initial tokens, in their own case, with and without the space
    assert {" Red", "Red", " North", "North", " Mark", "Mark", " Low", "Low", " El", "El", " dark", "dark"} == forbidden
    # never another case of them, never a fragment inside a word, never a common word
    for piece in (
        " red",
        " north",
        " mark",
        " low",
        " Dark",
        "ita",
        "get",
        " get",
        "r",
        " r",
        "m",
        " m",
        "M",
        " the",
        " An",
        " For",
        " By",
    ):
        assert piece in ids, f"the test expects {piece!r} to be one token"
        assert piece not in forbidden, piece
    # "Anita", "Forget" and "Byrne" begin with a common word's token and go on inside the word: nothing suppressed
    alone = make_blocks(
        [Document("d", "Parvati said Obliviate to Finnigan, and Parvati left.")], tok, block_size=512, min_tokens=1
    )
    (ab2,) = translate_blocks(alone, AnchorMap.from_dict(NAMED), tok, reference=[NAMED_REFERENCE])
    assert ab2.trans_text == "Anita said Forget to Byrne, and Anita left." and ab2.suppress == []


def test_a_value_made_of_common_words_suppresses_nothing(bpe_tokenizer):
    amap = AnchorMap.from_dict({"Hogwarts": ["the school"]})
    blocks = make_blocks(
        [Document("d", "He went to Hogwarts and then to the school again.")],
        bpe_tokenizer,
        block_size=512,
        min_tokens=1,
    )
    (ab,) = translate_blocks(blocks, amap, bpe_tokenizer, reference=["the school is the school. " * 50])
    assert ab.suppress == []


def test_overlapping_keys_longest_match_wins(tok):
    _, (ab,) = aligned(tok, "Ron Weasley and Ron left.")
    # "Ron" alone is not a key; "Ron Weasley" is replaced as a unit
    assert ab.trans_text == "Mike Smith and Ron left."
    check_alignment_invariant(ab)


def test_anchor_at_block_edges(tok):
    text = ("Harry " * 3 + "played Quidditch and went to Hogwarts with Hermione Potter ") * 4
    blocks, abs_ = aligned(tok, text.strip(), block_size=7)
    assert len(blocks) > 3
    for ab in abs_:
        check_alignment_invariant(ab)
        assert ab.orig_to_trans[-1] == -1


def test_translation_is_seeded_per_block(bpe_tokenizer):
    m = AnchorMap.from_dict({"Harry": ["Jon", "Tom", "Sam", "Ben", "Max"]})
    blocks = make_blocks([Document("d", "Harry left. " * 40)], bpe_tokenizer, block_size=8)
    a = translate_blocks(blocks, m, bpe_tokenizer, seed=3)
    b = translate_blocks(blocks, m, bpe_tokenizer, seed=3)
    assert [x.trans_text for x in a] == [x.trans_text for x in b]
    assert len({x.choices["Harry"] for x in a if "Harry" in x.choices}) > 1
    for x in a:  # one value per key within a block
        assert len({o.value for o in x.occurrences}) <= 1


def test_multibyte_characters_do_not_break_alignment(tok):
    _, (ab,) = aligned(tok, "Émile and Zoë met Harry at Hogwarts — naïve café talk.")
    check_alignment_invariant(ab)


def test_inner_rule_labels_first_occurrence_inside_anchor_only(tok):
    text = "Ron Weasley met Hogwarts friends. Later Ron Weasley left Hogwarts."
    blocks = make_blocks([Document("d", text)], tok, block_size=512, min_tokens=1)
    (plain,) = translate_blocks(blocks, ANCHORS, tok, seed=0)
    (ab,) = translate_blocks(blocks, ANCHORS, tok, seed=0, inner=True)
    assert np.array_equal(plain.orig_to_trans, ab.orig_to_trans)  # rule 5 adds positions, changes no alignment
    assert len(plain.inner_positions) == 0
    b = ab.block
    ends = b.offsets[:, 1]
    # first occurrences only (repeats are predictable from the block itself), and only between words:
    # "Ron" -> " Weasley", never inside "Hogwarts" or inside "Weasley"
    s = text.index("Ron Weasley")
    expected = np.nonzero(ends == s + len("Ron"))[0].tolist()
    assert ab.inner_positions.tolist() == expected and len(expected) == 1
    inside_word = np.nonzero((ends > s + len("Ron ")) & (ends < s + len("Ron Weasley")))[0]
    assert not set(inside_word.tolist()) & set(ab.inner_positions.tolist())
    assert not set(ab.inner_positions.tolist()) & set(ab.label_positions.tolist())
    for t, sup in zip(ab.inner_positions, ab.inner_suppress):
        nxt = int(b.input_ids[t + 1])
        assert nxt in sup  # the anchor's own continuation is suppressed, with its case/space variants
        key = tok.decode([nxt]).strip().lower()
        assert all(tok.decode([x]).strip().lower() == key for x in sup)
