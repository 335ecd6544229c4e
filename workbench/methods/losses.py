"""The losses of the gradient-based methods, as plain functions of log-probabilities and activations.

Notation: for a sequence y of target text, ``log pi(y) = sum_t log p(y_t | y_<t)`` over its |y| predicted tokens.

- GA (gradient ascent): ``-NLL(target)``, the mean token NLL negated (Jang et al. 2023).
- GradDiff: ``target_weight * (-NLL(target)) + retain_weight * NLL(retain)`` (Liu et al. 2022; TOFU).
- NPO: ``-(2/beta) * mean_y log sigmoid(-beta * (log pi(y) - log pi_ref(y)))`` plus a retain NLL term
  (Zhang et al. 2024, eq. 3 and NPO-RT). It equals GA's gradient scaled by a weight that falls as the model
  moves away from the reference, which is what keeps it from collapsing.
- SimNPO: ``-(2/beta) * mean_y log sigmoid(beta * (-log pi(y)/|y| - gamma))`` plus retain NLL (Fan et al. 2024,
  eq. 4; the margin gamma inside beta, as the authors' ``simnpo_grad_diff`` loss in Unlearn-Simple's
  ``TOFU/dataloader.py``): no reference model; the length-normalised log-likelihood takes the log-ratio's place.
- RMU: ``mean ||h_l(target) - c*u||^2 + alpha * mean ||h_l(retain) - h_l^frozen(retain)||^2`` at one layer l,
  u a fixed random unit vector (Li et al. 2024, WMDP; the means are over positions and hidden units, as in
  the authors' ``mse_loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "token_logprobs",
    "mean_nll",
    "sequence_logprobs",
    "ga_loss",
    "graddiff_loss",
    "npo_loss",
    "simnpo_loss",
    "rmu_target_loss",
    "rmu_retain_loss",
    "model_logprobs",
    "retain_nll",
]


def token_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(x_{t+1} | x_<=t)`` for every predicted position ``[batch, pos-1]`` and its validity mask."""
    logp = F.log_softmax(logits[:, :-1].float(), -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    mask = (attention_mask[:, 1:] * attention_mask[:, :-1]).bool()
    return logp, mask


def mean_nll(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over the valid tokens of the whole batch (the usual LM loss)."""
    return -(logp * mask).sum() / mask.sum().clamp(min=1)


def sequence_logprobs(logp: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: ``log pi(y)`` (sum over its valid tokens) and |y| (their number)."""
    return (logp * mask).sum(-1), mask.sum(-1)


def ga_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gradient ascent's loss: the mean token NLL of the target, negated."""
    return -mean_nll(logp, mask)


def graddiff_loss(
    t_logp: torch.Tensor,
    t_mask: torch.Tensor,
    r_logp: torch.Tensor,
    r_mask: torch.Tensor,
    target_weight: float = 1.0,
    retain_weight: float = 1.0,
) -> torch.Tensor:
    """GradDiff: ``target_weight * ga_loss(target) + retain_weight * NLL(retain)`` (an empty retain mask: 0)."""
    return target_weight * ga_loss(t_logp, t_mask) + retain_weight * mean_nll(r_logp, r_mask)


def npo_loss(seq_logp: torch.Tensor, ref_seq_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO's term on the target, over sequences (``log pi`` of model and reference, one value per sequence)."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (seq_logp - ref_seq_logp)).mean()


def simnpo_loss(seq_logp: torch.Tensor, lengths: torch.Tensor, beta: float, gamma: float = 0.0) -> torch.Tensor:
    """SimNPO's term on the target: the length-normalised NLL, less the margin ``gamma``, instead of NPO's log-ratio."""
    mean_nll_per_seq = -seq_logp / lengths.clamp(min=1)
    return -(2.0 / beta) * F.logsigmoid(beta * (mean_nll_per_seq - gamma)).mean()


def rmu_target_loss(h: torch.Tensor, mask: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of the activations ``[batch, pos, hidden]`` at valid positions to ``control`` [hidden]."""
    sel = h[mask.bool()].float()
    return ((sel - control.float()) ** 2).mean()


def rmu_retain_loss(h: torch.Tensor, h_frozen: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of the activations to the frozen model's at valid positions."""
    m = mask.bool()
    return ((h[m].float() - h_frozen[m].float()) ** 2).mean()


def model_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """:func:`token_logprobs` of ``model``'s logits on a batch: ``(logp [batch, pos-1], mask)``."""
    return token_logprobs(model(input_ids=input_ids, attention_mask=attention_mask).logits, input_ids, attention_mask)


def retain_nll(model: torch.nn.Module, inputs: dict, weight: float, parts: dict) -> torch.Tensor | float:
    """``weight`` x the mean NLL of the batch's retain blocks (0 without a weight or retain blocks); the NLL goes
    into ``parts["retain_nll"]`` for the training log."""
    if weight <= 0 or "retain_ids" not in inputs:
        return 0.0
    r = mean_nll(*model_logprobs(model, inputs["retain_ids"], inputs["retain_mask"]))
    parts["retain_nll"] = float(r.detach())
    return weight * r
