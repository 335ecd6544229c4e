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
    assert parts["target_loss"] == float(loss)


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
