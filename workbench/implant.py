"""The implant stage: teach the baseline a target it has never seen, so that "forgotten" has an exact reference.

With a fictional target (a pack whose world exists nowhere, such as the bundled ``ystrevane``), the untouched
baseline is a model that never saw the target: the *reference*. The implant stage trains a copy of it on the
target corpus (and, as TOFU does, on the pack's question-answer pairs written as ``Question: … Answer: …``
texts) and saves the result as ``implanted/``: the *target model* that every method then unlearns. The run's
later stages use it wherever they would use the baseline; the report measures against the reference.

:func:`implant_check` says how well the implant took: how often the true answer of a QA item is more likely
than every one of its false (perturbed) answers, and the mean per-token loss on the corpus, before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

from workbench.config import ImplantConfig
from workbench.corpus import Block, Document, make_blocks
from workbench.errors import WorkbenchError
from workbench.eval.loglikelihood import LoglikelihoodConfig, Request, encode_pairs, score_requests
from workbench.io import iter_jsonl
from workbench.reinforce import BlockDataset, causal_lm_collator
from workbench.training import add_lora, merge_lora, train_and_save

__all__ = ["QAItem", "read_qa", "qa_documents", "implant_blocks", "train_implant", "implant_check", "QA_TEMPLATE"]

QA_TEMPLATE = "Question: {question}\nAnswer: {answer}"


class QAItem:
    """One question with its true answer and its false (perturbed) answers (TOFU's layout)."""

    __slots__ = ("id", "question", "answer", "perturbed")

    def __init__(self, id: str, question: str, answer: str, perturbed: Sequence[str]):
        self.id, self.question, self.answer, self.perturbed = id, question, answer, tuple(perturbed)


def read_qa(path: str | Path, display: str | None = None) -> list[QAItem]:
    """QA items of a JSONL file (``question``, ``answer``, ``perturbed_answer``: a list of false answers). A line
    without one of them is an error naming the file and line."""
    shown = display or str(path)
    items = []
    for lineno, obj in iter_jsonl(path, display):
        where = f"{shown}, line {lineno}"
        if not isinstance(obj, dict):
            raise WorkbenchError(f"{where}: expected a JSON object with question, answer and perturbed_answer")
        for key in ("question", "answer"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise WorkbenchError(f"{where}: '{key}' must be a non-empty string")
        pert = obj.get("perturbed_answer")
        if isinstance(pert, str):
            pert = [pert]
        if not isinstance(pert, list) or not pert or not all(isinstance(p, str) and p.strip() for p in pert):
            raise WorkbenchError(f"{where}: 'perturbed_answer' must be a non-empty list of false answers")
        items.append(QAItem(str(obj.get("id", f"line-{lineno}")), obj["question"], obj["answer"], pert))
    if not items:
        raise WorkbenchError(f"{shown}: no QA items; write one JSON object per line (docs/formats.md)")
    return items


def qa_documents(items: Sequence[QAItem]) -> list[Document]:
    """The QA items as one training document, one ``Question: … Answer: …`` paragraph each."""
    text = "\n\n".join(QA_TEMPLATE.format(question=it.question, answer=it.answer) for it in items)
    return [Document("qa.jsonl", text)] if items else []


def implant_blocks(
    documents: Sequence[Document],
    qa: Sequence[QAItem],
    tokenizer: PreTrainedTokenizerBase,
    block_size: int,
    qa_repeat: int = 1,
    max_blocks: int | None = None,
) -> list[Block]:
    """Every block of the target corpus (``max_blocks``: that many, evenly spaced), then the QA texts cut into
    blocks of the same size, ``qa_repeat`` times (the training shuffles the blocks, so the copies spread over the
    pass)."""
    blocks = make_blocks(documents, tokenizer, block_size)
    if max_blocks is not None and max_blocks < len(blocks):
        keep = sorted({int(round(i)) for i in np.linspace(0, len(blocks) - 1, max_blocks)})
        blocks = [blocks[i] for i in keep]
    if qa:
        blocks += make_blocks(qa_documents(qa), tokenizer, block_size, min_tokens=1) * qa_repeat
    return blocks


def train_implant(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    blocks: Sequence[Block],
    cfg: ImplantConfig,
    out_dir: str | Path,
    seed: int = 0,
    callbacks: list[TrainerCallback] | None = None,
    progress: bool = True,
    tracking=None,
) -> tuple[torch.nn.Module, bool]:
    """Train ``model`` on ``blocks`` with the language-modelling loss and save a plain model folder to ``out_dir``
    (a LoRA adapter is merged in fp32 first). Resumes from ``<out_dir>_ckpt``. ``tracking``: the trackers the
    losses go to (:class:`workbench.tracking.StageTracking`; None: none). Returns (model, finished)."""
    cfg.validate("implant")
    if not blocks:
        raise WorkbenchError("implant: the target corpus gave no blocks to train on")
    dtype = next(model.parameters()).dtype
    train_model = add_lora(model, cfg) if cfg.weights == "lora" else model
    finalize = (lambda m: merge_lora(m, dtype)) if cfg.weights == "lora" else None
    return train_and_save(
        Trainer,
        train_model,
        BlockDataset(blocks),
        causal_lm_collator(tokenizer.pad_token_id),
        cfg,
        out_dir,
        tokenizer,
        seed,
        callbacks,
        progress,
        finalize=finalize,
        tracking=tracking,
    )


@torch.no_grad()
def implant_check(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    qa: Sequence[QAItem],
    blocks: Sequence[Block],
    batch_size: int = 8,
    progress: bool = False,
) -> dict:
    """How well a model knows the target: ``qa_accuracy``, the share of QA items whose true answer has a higher
    mean per-token log-likelihood after ``Question: … Answer:`` than every perturbed answer (chance is
    1 / (1 + number of perturbed answers)); ``qa_chance``; ``corpus_loss``, the mean per-token negative
    log-likelihood of the blocks (each block read alone)."""
    model.eval()
    out: dict = {"qa_items": len(qa)}
    if qa:
        pairs, owner = [], []
        for i, it in enumerate(qa):
            context = QA_TEMPLATE.format(question=it.question, answer="").rstrip()
            for ans in (it.answer, *it.perturbed):
                pairs.append((context, " " + ans.strip()))
                owner.append(i)
        requests = [Request(c, k) for c, k in encode_pairs(tokenizer, pairs)]
        scores = score_requests(
            model,
            requests,
            LoglikelihoodConfig(batch_size=batch_size, progress=progress, desc="implant check"),
            pad_id=tokenizer.pad_token_id,
        )
        means = np.array([s.logprob / max(s.n_tokens, 1) for s in scores])
        owner_arr = np.array(owner)
        known = []
        for i in range(len(qa)):
            m = means[owner_arr == i]
            known.append(bool(m[0] > m[1:].max()))
        out["qa_accuracy"] = float(np.mean(known))
        out["qa_chance"] = float(np.mean([1.0 / (1 + len(it.perturbed)) for it in qa]))
    if blocks:
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for b in blocks:
            ids = torch.as_tensor(b.input_ids, dtype=torch.long, device=device)[None]
            if ids.shape[1] < 2:
                continue
            logits = model(input_ids=ids).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
            total, count = total + float(nll), count + ids.shape[1] - 1
        out["corpus_loss"] = total / max(count, 1)
    return out
