"""`workbench plan`: parameter counts from config.json on the meta device, the memory estimate against measured
peaks, the launch choice, its errors; gradient checkpointing with LoRA."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ROOT

from workbench.cli import main
from workbench.config import TrainConfig, config_from_dict
from workbench.plan import estimate_stages, model_shape

CONFIGS = ROOT / "tests" / "data" / "model_configs"


def _llama_params(v, h, i, layers, heads, kv_heads, tied):
    """Parameters of a Llama model written out: embeddings, per layer q/k/v/o, gate/up/down and two norms, the
    final norm, and the output head unless tied."""
    kv = h * kv_heads // heads
    per_layer = h * h + 2 * h * kv + h * h + 3 * h * i + 2 * h
    return v * h + layers * per_layer + h + (0 if tied else v * h)


@pytest.mark.parametrize(
    "name, dims, known",
    [
        ("llama-2-7b", (32000, 4096, 11008, 32, 32, 32, False), 6.74e9),
        ("llama-3-8b", (128256, 4096, 14336, 32, 32, 8, False), 8.03e9),
        ("smollm2-135m", (49152, 576, 1536, 30, 9, 3, True), 134.5e6),
    ],
)
def test_parameter_counts_from_config_json_on_the_meta_device(name, dims, known):
    shape = model_shape(str(CONFIGS / name))
    assert shape.params == _llama_params(*dims)
    assert shape.params == pytest.approx(known, rel=5e-4)  # the published totals, as rounded
    assert (shape.hidden, shape.intermediate, shape.layers, shape.vocab, shape.tied) == (
        dims[1],
        dims[2],
        dims[3],
        dims[0],
        dims[6],
    )


def test_lora_parameter_count_matches_peft():
    from workbench.models import tiny_model
    from workbench.training import add_lora

    lm = tiny_model()
    shape = model_shape(lm.model.config)
    model = add_lora(lm.model, TrainConfig(lora_rank=4))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert shape.lora_params(4) == trained


def _write(tmp_path: Path, model: str, **over) -> Path:
    cfg = {"name": "plan", "model": model, "target": {"pack": "harry_potter", "block_size": 512}, **over}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_plan_for_llama_2_7b_prints_every_stage_and_a_launch(tmp_path, capsys):
    path = _write(tmp_path, str(CONFIGS / "llama-2-7b"))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    for stage in ("reinforce", "score", "labels", "finetune", "report"):
        assert any(line.startswith(stage) for line in out.splitlines()), stage
    assert "6.738B parameters" in out and "fits one GPU" in out and "no measured MFU" in out
    # full finetuning in bf16 with fp32 master weights does not fit one 80 GiB GPU; on 8 it is sharded
    path = _write(tmp_path, str(CONFIGS / "llama-2-7b"), finetune={"weights": "full"})
    assert main(["plan", str(path), "--gpus", "8", "--gpu-memory", "80"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("finetune:"))
    assert "fsdp.yaml" in line or "deepspeed_zero3" in line
    assert main(["plan", str(path), "--gpus", "1", "--gpu-memory", "24"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("finetune:"))
    assert "does NOT fit" in line


def test_estimate_arithmetic_for_llama_2_7b_lora():
    """The weights and optimizer terms written out for Llama-2-7b, LoRA rank 16, bf16 on a GPU."""
    cfg = config_from_dict({"model": "x", "reinforce": {"lora_rank": 16, "batch_size": 1}})
    shape = model_shape(str(CONFIGS / "llama-2-7b"))
    st = next(s for s in estimate_stages(cfg, shape, "gpu") if s.stage == "reinforce")
    # LoRA on q, k, v, o (4096 -> 4096) and gate, up (4096 -> 11008), down (11008 -> 4096) in 32 layers
    lora = 32 * 16 * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    assert st.weights == 2 * 6_738_415_616 + 4 * lora
    assert st.gradients == 4 * lora and st.optimizer == 8 * lora
    on = next(
        s
        for s in estimate_stages(
            config_from_dict(
                {"model": "x", "reinforce": {"lora_rank": 16, "batch_size": 1, "gradient_checkpointing": True}}
            ),
            shape,
            "gpu",
        )
        if s.stage == "reinforce"
    )
    assert on.activations < st.activations / 3  # checkpointing keeps one layer's input per layer


def _bench():
    spec = importlib.util.spec_from_file_location("bench_plan_memory", ROOT / "benchmarks" / "bench_plan_memory.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_plan_memory", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("method, checkpointing", [("lora", False), ("lora", True), ("full", False)])
def test_estimate_within_a_quarter_of_the_measured_peak_on_the_tiny_model(method, checkpointing):
    res = _bench().compare("tiny", batch=2, block=64, rank=4, method=method, checkpointing=checkpointing)
    assert 0.75 <= res["ratio"] <= 1.25, res


def test_plan_errors_exit_2_with_one_message(tmp_path, capsys):
    folder = tmp_path / "weights_only"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    assert main(["plan", str(_write(tmp_path, str(folder)))]) == 2
    err = capsys.readouterr().err
    assert "no config.json" in err and err.count("\n") == 1
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert main(["plan", str(_write(tmp_path, str(gguf)))]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["plan", str(_write(tmp_path, "some-org/not-cached-model-xyz"))]) == 2
    assert "never downloads" in capsys.readouterr().err


def test_lora_adapters_receive_gradients_under_gradient_checkpointing():
    """The known pitfall: with checkpointing, frozen embeddings cut the graph to the adapters. Here the adapters'
    gradients with checkpointing on are non-zero and equal to those without it."""
    from workbench.models import tiny_model
    from workbench.training import add_lora, gradient_checkpointing

    model = add_lora(tiny_model().model, TrainConfig(lora_rank=4))
    with torch.no_grad():  # lora_B starts at zero, which would leave lora_A without gradient: give it values
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))

    def grads():
        model.zero_grad(set_to_none=True)
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain = grads()
    with gradient_checkpointing(model):
        checkpointed = grads()
        inner = model.get_base_model()
        assert any(getattr(m, "gradient_checkpointing", False) for m in inner.modules())
    assert set(checkpointed) == set(plain) and len(plain) > 0
    for name, g in checkpointed.items():
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(g, plain[name], rtol=1e-4, atol=1e-6)
    assert not any(getattr(m, "gradient_checkpointing", False) for m in inner.modules())  # switched off after
