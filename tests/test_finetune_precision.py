"""Half-precision finetuning keeps its updates: fp32 master weights, LoRA merged in fp32 (CPU, bf16 and fp32)."""

import copy

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from workbench.corpus import make_blocks, read_documents
from workbench.finetune import FinetuneConfig, UnlearnDataset, finetune
from workbench.pack import load_pack


@pytest.fixture(scope="module")
def demo_blocks(bpe_tokenizer):
    docs = read_documents(load_pack("harry_potter").corpus_dir, "corpus")
    return make_blocks(docs[:2], bpe_tokenizer, 64)[:4]


def dataset(blocks, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for b in blocks:  # labels: other tokens of the same block, so training moves the model a good deal
        lab = rng.permutation(b.input_ids).astype(np.int64)
        lab[-1] = -100
        items.append({"input_ids": b.input_ids.astype(np.int64), "generic_labels": lab})
    return UnlearnDataset(items)


class Snapshot(TrainerCallback):
    """The trained model's next-token argmax on ``ids`` at the end of training (before any merge or cast)."""

    def __init__(self, ids):
        self.ids, self.argmax = ids, None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        with torch.no_grad():
            model.eval()
            self.argmax = model(input_ids=self.ids).logits.argmax(-1)


def argmax_of(path, dtype, ids):
    m = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype).eval()
    assert next(m.parameters()).dtype == dtype  # saved in the dtype it was trained from
    with torch.no_grad():
        return m(input_ids=ids).logits.argmax(-1)


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_saved_model_reproduces_the_trained_model(tiny, demo_blocks, tmp_path, method, dtype):
    ids = torch.as_tensor(np.stack([b.input_ids for b in demo_blocks]), dtype=torch.long)
    model = copy.deepcopy(tiny.model).to(dtype).requires_grad_(True)  # tiny.model stays the untrained reference
    cfg = FinetuneConfig(
        weights=method, target="hard", epochs=3, batch_size=2, learning_rate=2e-3, save_steps=1000, logging_steps=1000
    )
    snap = Snapshot(ids)
    _, finished = finetune(
        model, tiny.tokenizer, dataset(demo_blocks), cfg, tmp_path / "unlearned", callbacks=[snap], progress=False
    )
    assert finished
    base = tiny.model.to(torch.float32)(input_ids=ids).logits.argmax(-1)
    assert (snap.argmax != base).float().mean() > 0.05, "training must move the model for the test to mean anything"
    agree = (argmax_of(tmp_path / "unlearned", dtype, ids) == snap.argmax).float().mean().item()
    print(f"{method} {dtype}: agreement {agree:.4f}")
    if dtype == torch.float32:
        assert agree == 1.0
    else:  # full weights round once to bf16 on save; the tiny random model's near-flat logits flip a few near-ties
        assert agree >= (0.995 if method == "lora" else 0.99)


def test_bf16_full_finetuning_keeps_updates_below_bf16_resolution(tiny, demo_blocks, tmp_path):
    """Steps of 2e-5 are below half a bf16 step for most weights: AdamW on bf16 weights would drop them all.
    With fp32 master weights the bf16 run moves its weights as far as the same run in fp32 does."""
    cfg = FinetuneConfig(
        weights="full", target="hard", epochs=6, batch_size=1, learning_rate=2e-5, save_steps=1000, logging_steps=1000
    )
    start = copy.deepcopy(tiny.model).to(torch.bfloat16).requires_grad_(True)
    moved = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        model = copy.deepcopy(start).to(dtype)
        final, _ = finetune(model, tiny.tokenizer, dataset(demo_blocks), cfg, tmp_path / name, progress=False)
        w0 = torch.cat([p.detach().float().flatten() for p in start.parameters()])
        w1 = torch.cat([p.detach().float().flatten() for p in final.parameters()])
        moved[name] = w1 - w0
    ratio = moved["bf16"].norm() / moved["fp32"].norm()
    cos = torch.nn.functional.cosine_similarity(moved["bf16"], moved["fp32"], dim=0)
    assert 0.8 < ratio < 1.25 and cos > 0.8


def test_merge_lora_adds_the_update_in_fp32_then_rounds_once(tiny):
    """Reference, one layer at a time: bf16 weight in fp32 + scale * B @ A, cast to bf16 once."""
    from workbench.config import TrainConfig
    from workbench.training import add_lora, merge_lora

    start = copy.deepcopy(tiny.model).to(torch.bfloat16)
    peft_model = add_lora(copy.deepcopy(start), TrainConfig(lora_rank=2, lora_alpha=4))
    g = torch.Generator().manual_seed(0)
    expected = {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_B") and "default" in module.lora_B:
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            with torch.no_grad():  # small updates: most are below half a bf16 step of their weight
                b.copy_(torch.randn(b.shape, generator=g) * 1e-3)
            delta = (b.detach().float() @ a.detach().float()) * module.scaling["default"]
            key = name.replace("base_model.model.", "") + ".weight"
            expected[key] = (module.base_layer.weight.detach().float() + delta).to(torch.bfloat16)
    assert len(expected) > 4
    merged = merge_lora(peft_model, torch.bfloat16)
    params = dict(merged.named_parameters())
    assert all(p.dtype == torch.bfloat16 for p in params.values())
    for key, want in expected.items():
        assert torch.equal(params[key], want), key
