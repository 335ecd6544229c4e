"""The methods beside WHP: each loss against a value computed by hand, the runs on the tiny model, the saved
models loading with plain transformers, the test-time and prompt wrappers, and the bad settings."""

import contextlib
import math

import pytest
import torch
import yaml
from helpers import tiny_config
from transformers import TrainerCallback

from workbench.methods import losses as L
from workbench.methods.ga import ga
from workbench.methods.graddiff import GradDiffConfig, graddiff
from workbench.methods.layers import layer_output
from workbench.methods.npo import NPOConfig, npo
from workbench.methods.rmu import RMUConfig, rmu
from workbench.methods.simnpo import SimNPOConfig, simnpo


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits at position t are rows[t], whatever the input: probabilities are set by hand."""

    def __init__(self, rows):
        super().__init__()
        self.rows = torch.tensor(rows, dtype=torch.float32)

    def forward(self, input_ids, attention_mask=None, **_):
        class Out:
            pass

        out = Out()
        out.logits = self.rows[: input_ids.shape[1]][None].expand(input_ids.shape[0], -1, -1)
        return out


LN3 = math.log(3)
# Vocabulary of 4. The target is the sequence [0, 1, 2]: two predicted tokens, 1 then 2.
# Model: logits [0, ln3, 0, 0] -> p(1) = 3/6 = 1/2; then [0, 0, ln3, 0] -> p(2) = 1/2. So log pi(y) = -2 ln 2.
MODEL = FixedLogits([[0, LN3, 0, 0], [0, 0, LN3, 0], [0, 0, 0, 0]])
# Reference: uniform logits -> every token 1/4, log pi_ref(y) = -2 ln 4; log-ratio = ln 4.
REF = FixedLogits([[0, 0, 0, 0]] * 3)
TARGET = {"input_ids": torch.tensor([[0, 1, 2]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
# Retain sequence [3, 0]: the model gives token 0 probability 1/6 at position 0 -> NLL = ln 6.
WITH_RETAIN = {**TARGET, "retain_ids": torch.tensor([[3, 0]]), "retain_mask": torch.ones(1, 2, dtype=torch.long)}


def frozen():
    return contextlib.nullcontext(REF)


def test_ga_loss_is_minus_the_mean_nll():
    loss, parts = ga(None)(MODEL, TARGET, frozen)
    assert loss.item() == pytest.approx(-math.log(2), abs=1e-6)  # mean NLL of the two tokens is ln 2
    assert parts["forget_nll"] == pytest.approx(math.log(2), abs=1e-6)


def test_graddiff_loss_adds_the_weighted_retain_nll():
    loss, parts = graddiff(GradDiffConfig(target_weight=1.0, retain_weight=2.0))(MODEL, WITH_RETAIN, frozen)
    assert loss.item() == pytest.approx(-math.log(2) + 2 * math.log(6), abs=1e-5)
    assert parts == pytest.approx({"forget_nll": math.log(2), "retain_nll": math.log(6)}, abs=1e-5)
    loss, _ = graddiff(GradDiffConfig(target_weight=0.5, retain_weight=2.0))(MODEL, TARGET, frozen)
    assert loss.item() == pytest.approx(-0.5 * math.log(2), abs=1e-6)  # no retain batch: the ascent term alone
    # the training loss is the tested function of the log-probabilities
    f = L.token_logprobs(MODEL(**TARGET).logits, TARGET["input_ids"], TARGET["attention_mask"])
    r = L.token_logprobs(MODEL(WITH_RETAIN["retain_ids"]).logits, WITH_RETAIN["retain_ids"], WITH_RETAIN["retain_mask"])
    assert L.graddiff_loss(*f, *r, 1.0, 2.0).item() == pytest.approx(-math.log(2) + 2 * math.log(6), abs=1e-5)


def test_npo_loss_by_hand():
    # -(2/beta) log sigmoid(-beta ln 4) = (2/beta) ln(1 + 4^beta); beta = 0.5 -> 4 ln 3
    loss, parts = npo(NPOConfig(beta=0.5, retain_weight=0.0))(MODEL, TARGET, frozen)
    assert loss.item() == pytest.approx(4 * LN3, abs=1e-5)
    assert parts["log_ratio"] == pytest.approx(math.log(4), abs=1e-5)
    # with the retain term (weight 1): + ln 6
    loss, _ = npo(NPOConfig(beta=0.5, retain_weight=1.0))(MODEL, WITH_RETAIN, frozen)
    assert loss.item() == pytest.approx(4 * LN3 + math.log(6), abs=1e-5)


def test_npo_is_zero_gradient_free_at_the_reference_value():
    # at the reference (log-ratio 0) the loss is (2/beta) ln 2 for any beta
    loss, _ = npo(NPOConfig(beta=0.1, retain_weight=0.0))(REF, TARGET, frozen)
    assert loss.item() == pytest.approx(20 * math.log(2), abs=1e-4)


def test_simnpo_loss_by_hand():
    # -(2/beta) log sigmoid(beta * (-log pi(y)/|y| - gamma)), |y| = 2, log pi = -2 ln 2, so the mean NLL is ln 2:
    # beta = 2, gamma = ln(2)/2 -> sigmoid(2 * (ln 2 - ln(2)/2)) = sigmoid(ln 2) = 2/3 -> loss = -ln(2/3)
    # (the margin inside beta, as the authors' code; outside it, the argument would be 2 ln 2 - ln(2)/2)
    cfg = SimNPOConfig(beta=2.0, gamma=math.log(2) / 2, target_weight=1.0, retain_weight=0.0)
    loss, _ = simnpo(cfg)(MODEL, TARGET, frozen)
    assert loss.item() == pytest.approx(math.log(1.5), abs=1e-6)
    # the authors' forget coefficient multiplies the SimNPO term only; the retain NLL (ln 6) keeps weight 1
    cfg = SimNPOConfig(beta=2.0, gamma=math.log(2) / 2, target_weight=0.1375, retain_weight=1.0)
    loss, _ = simnpo(cfg)(MODEL, WITH_RETAIN, frozen)
    assert loss.item() == pytest.approx(0.1375 * math.log(1.5) + math.log(6), abs=1e-6)


def test_simnpo_and_npo_defaults_are_the_authors_coefficients():
    s, n = SimNPOConfig(), NPOConfig()
    assert (s.beta, s.gamma, s.target_weight, s.retain_weight) == (2.5, 0.0, 0.1375, 1.0)
    assert (n.beta, n.target_weight, n.retain_weight) == (0.1, 1.0, 1.0)


def test_npo_target_weight_scales_the_npo_term_only():
    loss, _ = npo(NPOConfig(beta=0.5, target_weight=0.25, retain_weight=1.0))(MODEL, WITH_RETAIN, frozen)
    assert loss.item() == pytest.approx(0.25 * 4 * LN3 + math.log(6), abs=1e-5)


def test_sequence_terms_ignore_padding_and_average_over_sequences():
    # two rows: [0,1,2] and [0,1] + padding; row 2 has log pi = -ln 2 over one token
    batch = {"input_ids": torch.tensor([[0, 1, 2], [0, 1, 3]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}
    loss, _ = simnpo(SimNPOConfig(beta=2.0, gamma=0.0, target_weight=1.0, retain_weight=0.0))(MODEL, batch, frozen)
    # both rows have mean NLL ln 2: sigmoid(2 ln 2) = 4/5 -> -(2/2) ln(4/5) each
    assert loss.item() == pytest.approx(-math.log(0.8), abs=1e-6)
    loss, _ = npo(NPOConfig(beta=1.0, retain_weight=0.0))(MODEL, batch, frozen)
    # log-ratios ln 4 and ln 2: mean of 2 ln(1 + 4) and 2 ln(1 + 2)
    assert loss.item() == pytest.approx((2 * math.log(5) + 2 * math.log(3)) / 2, abs=1e-5)


def test_rmu_losses_by_hand():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    mask = torch.tensor([[1, 1, 0]])  # the third position is padding
    # (h - [1, 0])^2 at valid positions: 0, 4, 4, 16 -> mean 6
    assert L.rmu_target_loss(h, mask, torch.tensor([1.0, 0.0])).item() == pytest.approx(6.0)
    frozen_h = torch.tensor([[[1.0, 0.0], [3.0, 6.0], [0.0, 0.0]]])
    # differences 0, 2, 0, -2 -> squares 0, 4, 0, 4 -> mean 2
    assert L.rmu_retain_loss(h, frozen_h, mask).item() == pytest.approx(2.0)


def test_rmu_on_the_tiny_model_matches_a_slow_computation(tiny):
    m = tiny.model
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    h = layer_output(m, 0, ids, mask)
    with torch.no_grad():
        ref = m(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[1]
    assert torch.allclose(h, ref, atol=1e-6)
    control = torch.tensor([0.5] * m.config.hidden_size)
    inputs = {"input_ids": ids, "attention_mask": mask, "retain_ids": ids, "retain_mask": mask}
    loss, parts = rmu(RMUConfig(retain_weight=3.0), 0, control)(m, inputs, lambda: contextlib.nullcontext(m))
    total, count = 0.0, 0
    for b in range(2):
        for t in range(4):
            if mask[b, t]:
                for d in range(m.config.hidden_size):
                    total += (float(ref[b, t, d]) - 0.5) ** 2
                    count += 1
    assert parts["forget_mse"] == pytest.approx(total / count, rel=1e-5)
    assert parts["retain_mse"] == pytest.approx(0.0, abs=1e-10)  # the frozen model is the model itself
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


# -- runs on the tiny model -------------------------------------------------------------------------------------------
def _run(tmp_path, method, **over):
    from workbench.config import config_from_dict
    from workbench.run import Run

    cfg = config_from_dict(tiny_config(tmp_path, method=method, **over))
    return Run(cfg, tmp_path / "run", progress=False, log=None)


@pytest.mark.parametrize("method", ["ga", "graddiff", "npo", "simnpo", "rmu"])
def test_trained_methods_save_a_plain_transformers_model(tmp_path, method):
    from transformers import AutoModelForCausalLM

    from workbench.models import tiny_model

    run = _run(tmp_path, method, finetune={"learning_rate": 5e-2})
    run.run()
    assert set(run.stage_record("finetune")) >= {"method", "fingerprint"}
    assert not (tmp_path / "run" / "reinforced").exists() and not (tmp_path / "run" / "labels").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "unlearned").eval()
    base = tiny_model().model
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        a, b = loaded(input_ids=ids).logits, base(input_ids=ids).logits
    assert not torch.allclose(a, b, atol=1e-4)  # the method changed the weights
    # a rerun with the same config skips the stage
    before = run.stage_record("finetune")["finished_at"]
    from workbench.run import Run

    Run(run.cfg, tmp_path / "run", progress=False, log=None).run(("finetune",))
    assert run.stage_record("finetune")["finished_at"] == before


def test_rmu_trains_only_the_down_projections_below_the_steered_layer(tmp_path):
    """The WMDP authors' parameters: the full-rank MLP down-projections of layers l-2..l, nothing else, at a
    constant learning rate."""
    from safetensors.torch import load_file

    from workbench.models import tiny_model

    run = _run(tmp_path, "rmu", methods={"rmu": {"layer": 1}}, finetune={"learning_rate": 5e-2, "logging_steps": 1})
    lrs = []
    run.callbacks.append(
        type(
            "LR",
            (TrainerCallback,),
            {"on_log": lambda self, args, state, control, logs=None, **kw: lrs.append(logs.get("learning_rate"))},
        )()
    )
    run.run()
    after = load_file(str(tmp_path / "run" / "unlearned" / "model.safetensors"))
    before = tiny_model().model.state_dict()
    changed = {k for k, v in after.items() if k in before and not torch.equal(v, before[k])}
    assert changed == {f"model.layers.{i}.mlp.down_proj.weight" for i in (0, 1)}  # l = 1: layers 0 and 1
    lrs = [x for x in lrs if x is not None]
    assert lrs and all(x == pytest.approx(5e-2) for x in lrs)


def test_ga_raises_the_target_nll(tmp_path):
    from workbench.methods.losses import mean_nll, token_logprobs
    from workbench.models import load_model, tiny_model

    run = _run(tmp_path, "ga", finetune={"learning_rate": 5e-2})
    run.run()
    ids = torch.as_tensor(run.blocks[0].input_ids)[None]
    mask = torch.ones_like(ids)
    with torch.no_grad():
        before = mean_nll(*token_logprobs(tiny_model().model(input_ids=ids).logits, ids, mask))
        after = mean_nll(*token_logprobs(load_model(str(tmp_path / "run")).model(input_ids=ids).logits, ids, mask))
    assert after > before + 0.01


def test_test_time_model_mixes_logits_as_the_formula(tmp_path):
    from workbench.models import load_model, tiny_model

    run = _run(tmp_path, "whp_test_time", methods={"whp_test_time": {"alpha": 3.0}}, reinforce={"learning_rate": 5e-2})
    run.run()
    desc = tmp_path / "run" / "unlearned" / "workbench_method.json"
    assert desc.is_file() and not (tmp_path / "run" / "labels").exists()
    lm = load_model(str(tmp_path / "run"))
    from peft import PeftModel

    peft = PeftModel.from_pretrained(tiny_model().model, str(tmp_path / "run" / "reinforced")).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        reinf = peft(input_ids=ids).logits
        with peft.disable_adapter():
            base = peft(input_ids=ids).logits
        got = lm.model(input_ids=ids).logits
    expected = base - 3.0 * torch.relu(reinf - base)
    assert not torch.allclose(reinf, base, atol=1e-4)
    assert torch.allclose(got, expected, atol=1e-5)


def test_prompt_model_scores_the_input_after_the_instruction(tmp_path):
    from workbench.eval.probes import score_probes
    from workbench.models import load_model, tiny_model
    from workbench.pack import NextTokenProbe

    run = _run(tmp_path, "prompt", methods={"prompt": {"system": "Forget {title}."}})
    run.run()
    lm = load_model(str(tmp_path / "run"))
    base = tiny_model()
    prefix = lm.model.prefix.tolist()
    assert "Forget the target text." in base.tokenizer.decode(prefix)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    with torch.no_grad():
        got = lm.model(input_ids=ids).logits
        full = base.model(input_ids=torch.cat([torch.tensor([prefix] * 2), ids], 1)).logits[:, len(prefix) :]
    assert torch.allclose(got, full, atol=1e-5)
    # left-padded scoring (the evaluation's batches) gives the same probability as one prompt alone
    probes = [
        NextTokenProbe(id="a", prompt="Harry went to the", targets=(" school",), split="dev"),
        NextTokenProbe(
            id="b", prompt="A much longer prompt that pads the other one in the", targets=(" end",), split="dev"
        ),
    ]
    batched = score_probes(lm, probes)
    alone = score_probes(lm, probes[:1])
    assert batched.loc[0, "prob"] == pytest.approx(alone.loc[0, "prob"], rel=1e-4)


def test_wrapper_generation_matches_transformers_generate(tiny):
    from peft import LoraConfig, get_peft_model

    from workbench.methods.wrappers import TestTimeModel

    base = tiny.model
    peft = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))  # B = 0: reinforced == base
    wrapper = TestTimeModel(peft, alpha=2.0).eval()
    ids = torch.tensor([[0, 5, 6, 7], [9, 10, 11, 12]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    with peft.disable_adapter():
        expected = base.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None
        )
    got = wrapper.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, pad_token_id=0, eos_token_id=-1)
    assert torch.equal(got, expected)
    peft.unload()


# -- bad settings -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "over,needle",
    [
        ({"method": "forget_everything"}, "unknown method 'forget_everything'"),
        ({"method": "rmu", "methods": {"rmu": {"layer": 5}}}, "methods.rmu.layer: 5 is out of range"),
        ({"method": "npo", "methods": {"npo": {"reference": None}}}, "NPO needs a reference model"),
    ],
)
def test_bad_method_settings_exit_2_with_one_message(tmp_path, capsys, over, needle):
    from workbench.cli import main

    cfg = tiny_config(tmp_path)
    cfg.update(over)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("error:") == 1
    assert not (tmp_path / "run" / "unlearned").exists()


def test_runs_made_before_the_method_key_stay_valid(tmp_path):
    from workbench.config import config_from_dict, config_to_dict
    from workbench.errors import WorkbenchError
    from workbench.run import Run

    cfg = config_from_dict(tiny_config(tmp_path))
    old = config_to_dict(cfg)
    del old["method"], old["methods"]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(old))
    run = Run(cfg, tmp_path / "run", progress=False, log=None)  # no "different config" refusal
    assert run.cfg.method == "whp" and run.dir == tmp_path / "run"
    # the same old file with one setting changed is still refused: the missing keys are filled, not ignored
    old["finetune"]["learning_rate"] *= 2
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(WorkbenchError, match=r"different config .*finetune\.learning_rate"):
        Run(cfg, tmp_path / "run", progress=False, log=None)


def test_wrappers_give_the_hidden_states_of_the_model_they_read(tiny):
    from peft import LoraConfig, get_peft_model

    from workbench.eval.attacks import hidden_states
    from workbench.methods.wrappers import PromptModel, TestTimeModel

    base = tiny.model
    ids = torch.tensor([[0, 5, 6, 7]])
    mask = torch.tensor([[0, 1, 1, 1]])
    prompt = PromptModel(base, [11, 12, 13])
    got = hidden_states(prompt, ids, mask)
    with torch.no_grad():
        full = base(
            input_ids=torch.tensor([[11, 12, 13, 0, 5, 6, 7]]),
            attention_mask=torch.tensor([[1, 1, 1, 0, 1, 1, 1]]),
            position_ids=torch.tensor([[0, 1, 2, 2, 3, 4, 5]]),
            output_hidden_states=True,
        ).hidden_states
    assert len(got) == len(full)
    assert torch.allclose(got[-1][0, 1:], full[-1][0, 4:], atol=1e-5)
    peft = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # the reinforced model now differs from the baseline
        with peft.disable_adapter():
            plain = peft(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    tt = hidden_states(TestTimeModel(peft, 5.0), ids, mask)
    assert all(torch.allclose(a, b) for a, b in zip(tt, plain))
    peft.unload()
