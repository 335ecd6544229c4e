"""The unlearning loss: hard labels, soft targets, the retain term."""

import numpy as np
import torch
import torch.nn.functional as F

from workbench.finetune import FinetuneConfig, unlearning_collator, unlearning_loss
from workbench.training import TrainConfig, add_lora


def batch(tok, vocab, with_soft=False, with_retain=False, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=12)
    labels = np.full(12, -100)
    labels[[2, 5, 7]] = rng.integers(0, vocab, size=3)
    item = {"input_ids": ids, "generic_labels": labels}
    if with_soft:
        k = 4
        item["soft_ids"] = rng.integers(0, vocab, size=(12, k))
        p = rng.random((12, k)).astype(np.float32)
        item["soft_probs"] = p / p.sum(-1, keepdims=True)
    if with_retain:
        item["retain_ids"] = rng.integers(0, vocab, size=9)
    return unlearning_collator(tok.pad_token_id)([item])


def test_hard_loss_is_cross_entropy_on_labelled_positions_only(tiny):
    m, tok = tiny.model, tiny.tokenizer
    b = batch(tok, m.config.vocab_size)
    loss, parts = unlearning_loss(m, b, FinetuneConfig(target="hard"))
    logits = m(input_ids=b["input_ids"]).logits[0]
    pos = [2, 5, 7]
    expected = F.cross_entropy(logits[pos], b["generic_labels"][0, pos])
    assert torch.allclose(loss, expected, atol=1e-5)
    assert parts["target_loss"] == loss.item()


def test_soft_loss_is_cross_entropy_to_topk_distribution(tiny):
    m, tok = tiny.model, tiny.tokenizer
    b = batch(tok, m.config.vocab_size, with_soft=True)
    loss, _ = unlearning_loss(m, b, FinetuneConfig(target="soft"))
    logp = torch.log_softmax(m(input_ids=b["input_ids"]).logits[0], -1)
    expected = 0.0
    for p in [2, 5, 7]:
        expected += -(b["soft_probs"][0, p] * logp[p, b["soft_ids"][0, p]]).sum()
    assert torch.allclose(loss, expected / 3, atol=1e-5)


def test_retain_term_is_zero_for_a_fresh_adapter_and_positive_after_a_change(tiny):
    from workbench.models import tiny_model

    fresh = tiny_model(seed=0)
    model = add_lora(fresh.model, TrainConfig(lora_rank=2, lora_alpha=4))
    b = batch(fresh.tokenizer, fresh.model.config.vocab_size, with_retain=True)
    cfg = FinetuneConfig(retain_weight=2.0)

    def reference(ids, mask):
        with model.disable_adapter():
            return model(input_ids=ids, attention_mask=mask).logits

    loss, parts = unlearning_loss(model, b, cfg, reference)
    assert abs(parts["retain_kl"]) < 1e-6  # LoRA B starts at zero: the model equals the baseline
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    loss2, parts2 = unlearning_loss(model, b, cfg, reference)
    assert parts2["retain_kl"] > 1e-4
    assert torch.allclose(loss2, torch.tensor(parts2["target_loss"] + 2.0 * parts2["retain_kl"]), atol=1e-4)


def _record_retain_pairs(tiny, tmp_path, epochs, stop_at=None):
    """Train on 3 target items beside 7 retain blocks; return (epoch, item's first token, retain block's first
    token) for every item the loss saw, read off the batches themselves."""
    import copy

    from workbench.finetune import UnlearnDataset, UnlearningTrainer, finetune
    from workbench.training import StopController

    rng = np.random.default_rng(0)
    vocab = tiny.model.config.vocab_size
    items = [
        {"input_ids": np.array([100 + i, *rng.integers(0, vocab, 7)]), "generic_labels": np.full(8, 5)}
        for i in range(3)
    ]
    retain = [np.array([200 + j, *rng.integers(0, vocab, 5)]) for j in range(7)]
    seen = []
    original = UnlearningTrainer.compute_loss

    def spy(self, model, inputs, *a, **k):
        seen.append(
            (int(self.state.epoch), int(inputs["input_ids"][0, 0]) - 100, int(inputs["retain_ids"][0, 0]) - 200)
        )
        return original(self, model, inputs, *a, **k)

    class Stop(StopController):  # the notebook's stop button, pressed during step ``stop_at``
        def on_step_begin(self, args, state, control, **kw):
            if stop_at is not None and state.global_step + 1 == stop_at:
                self.stop()

    cfg = FinetuneConfig(
        epochs=epochs, batch_size=1, grad_accum=1, retain_weight=1.0, save_steps=1, learning_rate=1e-4, target="hard"
    )
    UnlearningTrainer.compute_loss = spy
    try:
        _, finished = finetune(
            copy.deepcopy(tiny.model),
            tiny.tokenizer,
            UnlearnDataset(items, retain),
            cfg,
            tmp_path / "unlearned",
            callbacks=[Stop()],
            progress=False,
        )
    finally:
        UnlearningTrainer.compute_loss = original
    return seen, finished


def test_retain_blocks_walk_on_across_epochs_and_resume_the_same_way(tiny, tmp_path):
    seen, finished = _record_retain_pairs(tiny, tmp_path / "clean", epochs=3)
    assert finished and len(seen) == 9
    for epoch, i, j in seen:  # target item i in epoch e beside retain block (i + 3e) mod 7
        assert j == (i + 3 * epoch) % 7, (epoch, i, j)
    assert len({j for _, _, j in seen}) == 7  # every retain block used, not the first three every epoch

    # stopped in the middle of epoch 1 and resumed: the same pairs as an uninterrupted run
    first, finished = _record_retain_pairs(tiny, tmp_path / "killed", epochs=3, stop_at=4)
    assert not finished
    rest, finished = _record_retain_pairs(tiny, tmp_path / "killed", epochs=3)
    assert finished
    assert first[:4] + rest == seen
