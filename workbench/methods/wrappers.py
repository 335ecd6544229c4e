"""Methods that change no weights: a model wrapper the evaluation scores and generates with like any causal LM.

- :class:`TestTimeModel` (``whp_test_time``): logits ``v_base - alpha * relu(v_reinf - v_base)`` on the same
  input, from the baseline and the run's reinforced model (MUSE's test-time WHP).
- :class:`PromptModel` (``prompt``): the baseline with a system instruction before every input.

The run writes a small descriptor, ``unlearned/workbench_method.json``; :func:`workbench.models.load_model` on
that folder (or on the run directory) returns the wrapper, so ``workbench eval``, the report and the attacks use
it unchanged. Generation is a plain loop without a key-value cache (each step reruns the whole sequence): slower
than ``model.generate`` but exact for any logits the wrapper computes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers.modeling_outputs import CausalLMOutput

from workbench.errors import WorkbenchError
from workbench.io import atomic_write_json
from workbench.methods.prompt import system_prefix_ids  # re-exported: models.py loads the prompt wrapper
from workbench.model_pair import generic_scores
from workbench.rundir import DESCRIPTOR, RunDir

__all__ = [
    "DESCRIPTOR",
    "LogitsWrapper",
    "TestTimeModel",
    "PromptModel",
    "write_descriptor",
    "find_descriptor",
    "system_prefix_ids",
    "FORMAT",
]

FORMAT = "whp-method/1"


class LogitsWrapper(torch.nn.Module):
    """A causal LM computed from other models: ``forward`` gives logits, ``generate`` decodes with them."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | None = None,
        **_: object,
    ) -> CausalLMOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.logits(input_ids, attention_mask, position_ids)
        if logits_to_keep:
            out = out[:, -logits_to_keep:]
        return CausalLMOutput(logits=out)

    @torch.inference_mode()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        pad_token_id: int | None = None,
        eos_token_id: int | None = None,
        num_return_sequences: int = 1,
        do_sample: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        **_: object,
    ) -> torch.Tensor:
        """Prompt and continuation ids ``[batch * num_return_sequences, prompt + new]`` (finished rows padded)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ids = input_ids.repeat_interleave(num_return_sequences, 0)
        mask = attention_mask.repeat_interleave(num_return_sequences, 0)
        eos = eos_token_id if eos_token_id is not None else getattr(self.config, "eos_token_id", None)
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        pad = pad_token_id if pad_token_id is not None else (min(eos_ids) if eos_ids else 0)
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _step in range(max_new_tokens):
            logits = self(ids, mask, logits_to_keep=1).logits[:, -1].float()
            if do_sample:
                nxt = _sample(logits, temperature or 1.0, top_p, top_k)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, (~done).long()[:, None]], 1)
            done |= torch.tensor([int(t) in eos_ids for t in nxt], device=ids.device)
            if bool(done.all()):
                break
        return ids


def _sample(logits: torch.Tensor, temperature: float, top_p: float | None, top_k: int | None) -> torch.Tensor:
    logits = logits / max(temperature, 1e-6)
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_l, order = logits.sort(-1, descending=True)
        cum = sorted_l.softmax(-1).cumsum(-1)
        drop = cum - sorted_l.softmax(-1) > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_l = sorted_l.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_l)
    return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


class TestTimeModel(LogitsWrapper):
    """``v_base - alpha * relu(v_reinf - v_base)``: a LoRA reinforced model (adapter toggled on one model), or a
    baseline and a separate reinforced model."""

    __test__ = False  # not a pytest test class

    def __init__(self, base: torch.nn.Module, alpha: float, reinforced: torch.nn.Module | None = None) -> None:
        cfg = base.get_base_model().config if reinforced is None else base.config
        super().__init__(cfg)
        self.base = base
        self.reinforced = reinforced
        self.alpha = float(alpha)

    def logits(self, input_ids, attention_mask, position_ids):
        kw = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        if self.reinforced is None:
            with self.base.disable_adapter():
                v_base = self.base(**kw).logits.float()
            v_reinf = self.base(**kw).logits.float()
        else:
            v_base = self.base(**kw).logits.float()
            v_reinf = self.reinforced(**kw).logits.float()
        return generic_scores(v_base, v_reinf, self.alpha)

    def hidden_states(self, input_ids, attention_mask):
        """The baseline's hidden states: the mix acts on the logits only."""
        kw = dict(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
        if self.reinforced is None:
            with self.base.disable_adapter():
                return self.base(**kw).hidden_states
        return self.base(**kw).hidden_states


class PromptModel(LogitsWrapper):
    """The baseline reading ``prefix_ids`` (a system instruction) before every input; logits of the input only."""

    def __init__(self, base: torch.nn.Module, prefix_ids: list[int]) -> None:
        super().__init__(base.config)
        if not prefix_ids:
            raise WorkbenchError("the prompt method's system instruction is empty")
        self.base = base
        self.register_buffer("prefix", torch.tensor(prefix_ids, dtype=torch.long), persistent=False)

    def logits(self, input_ids, attention_mask, position_ids):
        n, p = input_ids.shape[0], len(self.prefix)
        pre = self.prefix.to(input_ids.device)[None].expand(n, p)
        ids = torch.cat([pre, input_ids], 1)
        mask = torch.cat([torch.ones_like(pre), attention_mask.long()], 1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # the input continues after the prefix, padding or not
        out = self.base(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
        return out[:, p:]

    def hidden_states(self, input_ids, attention_mask):
        """The baseline's hidden states at the input's positions, read after the instruction."""
        n, p = input_ids.shape[0], len(self.prefix)
        pre = self.prefix.to(input_ids.device)[None].expand(n, p)
        mask = torch.cat([torch.ones_like(pre), attention_mask.long()], 1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        hs = self.base(
            input_ids=torch.cat([pre, input_ids], 1),
            attention_mask=mask,
            position_ids=pos,
            output_hidden_states=True,
            use_cache=False,
        ).hidden_states
        return tuple(h[:, p:] for h in hs)


# -- descriptors ----------------------------------------------------------------------------------------------------
def write_descriptor(folder: str | os.PathLike, data: dict) -> None:
    atomic_write_json(Path(folder) / DESCRIPTOR, {"format": FORMAT, **data})


def find_descriptor(spec: str) -> Path | None:
    """The descriptor of a model spec that names a descriptor folder, or a run directory holding one."""
    try:
        path = Path(spec).expanduser()
        for cand in (path / DESCRIPTOR, RunDir(path).descriptor):
            if cand.is_file():
                return cand
    except (OSError, ValueError):
        return None
    return None
