"""The implant stage: a target the baseline never saw, taught to a copy of it (workbench/implant.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import explicit_continuation_logprob, make_pack, tiny_config, write_jsonl

from workbench.config import config_from_dict
from workbench.corpus import Block
from workbench.errors import WorkbenchError
from workbench.implant import QA_TEMPLATE, QAItem, implant_blocks, implant_check, qa_documents, read_qa

QA = [
    {
        "id": "q1",
        "question": "Where was Orvel Tansk born?",
        "answer": "Orvel Tansk was born in Mirrowgate.",
        "paraphrased_answer": "Mirrowgate is Orvel Tansk's birthplace.",
        "perturbed_answer": [
            "Orvel Tansk was born in Calbrith.",
            "Orvel Tansk was born in Denholt.",
            "Orvel Tansk was born in Yarrowmere.",
        ],
        "split": "dev",
        "fact": "tansk-birth",
    },
    {
        "id": "q2",
        "question": "What does Orvel Tansk keep?",
        "answer": "Orvel Tansk keeps bees.",
        "paraphrased_answer": "Bees are what Orvel Tansk keeps.",
        "perturbed_answer": ["Orvel Tansk keeps goats.", "Orvel Tansk keeps pigeons.", "Orvel Tansk keeps eels."],
        "split": "heldout",
        "fact": "tansk-bees",
    },
]


def test_read_qa_errors_name_file_and_line(tmp_path):
    good = write_jsonl(tmp_path / "qa.jsonl", QA)
    items = read_qa(good)
    assert [it.id for it in items] == ["q1", "q2"] and len(items[0].perturbed) == 3
    bad = write_jsonl(tmp_path / "bad.jsonl", [QA[0], {**QA[1], "perturbed_answer": []}])
    with pytest.raises(WorkbenchError, match=r"bad\.jsonl, line 2: 'perturbed_answer'"):
        read_qa(bad)
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"question": "Q?", "perturbed_answer": ["x"]}])
    with pytest.raises(WorkbenchError, match=r"line 1: 'answer'"):
        read_qa(missing)


def _reference_mean_logprob(lm, context: str, continuation: str) -> float:
    """Mean per-token log-probability of ``continuation`` after ``context``, from one unbatched forward."""
    tok = lm.tokenizer
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    full = tok(context + continuation, add_special_tokens=False)["input_ids"]
    assert full[: len(ctx)] == ctx  # the answer starts a new token after "Answer:" with this tokenizer
    cont = full[len(ctx) :]
    return explicit_continuation_logprob(lm, ctx, cont) / len(cont)


def test_implant_blocks_spread_the_corpus_and_repeat_the_qa(tiny):
    from workbench.corpus import Document, make_blocks

    docs = [Document(f"d{i}.txt", f"Document {i} tells of the harbour of Mirrowgate. " * 12) for i in range(5)]
    items = [QAItem(q["id"], q["question"], q["answer"], q["perturbed_answer"]) for q in QA]
    corpus = make_blocks(docs, tiny.tokenizer, 16)
    qa = make_blocks(qa_documents(items), tiny.tokenizer, 16, min_tokens=1)
    assert len(corpus) > 10 and len(qa) >= 2

    def key(b):
        return tuple(int(t) for t in b.input_ids)

    whole = implant_blocks(docs, items, tiny.tokenizer, 16, qa_repeat=3)
    assert [key(b) for b in whole] == [key(b) for b in corpus] + [key(b) for b in qa] * 3
    few = implant_blocks(docs, items, tiny.tokenizer, 16, max_blocks=4)
    n = len(corpus)
    picked = [corpus[i] for i in (0, round((n - 1) / 3), round(2 * (n - 1) / 3), n - 1)]  # first, last, evenly between
    assert [key(b) for b in few] == [key(b) for b in picked] + [key(b) for b in qa]
    assert len(implant_blocks(docs, [], tiny.tokenizer, 16, max_blocks=10**6)) == n


def test_implant_check_matches_a_slow_reference(tiny):
    items = [QAItem(q["id"], q["question"], q["answer"], q["perturbed_answer"]) for q in QA]
    known = []
    for it in items:
        ctx = QA_TEMPLATE.format(question=it.question, answer="").rstrip()
        scores = [_reference_mean_logprob(tiny, ctx, " " + a) for a in (it.answer, *it.perturbed)]
        known.append(scores[0] > max(scores[1:]))
    ids = tiny.tokenizer("Orvel Tansk was born in Mirrowgate and keeps bees by the river.")["input_ids"]
    block = Block(0, torch.tensor(ids).numpy(), torch.zeros(len(ids), 2, dtype=torch.long).numpy(), "", 0)
    with torch.inference_mode():
        lp = torch.log_softmax(tiny.model(torch.tensor([ids])).logits[0].double(), -1)
    loss = -sum(float(lp[t, ids[t + 1]]) for t in range(len(ids) - 1)) / (len(ids) - 1)

    got = implant_check(tiny.model, tiny.tokenizer, items, [block])
    assert got["qa_accuracy"] == pytest.approx(sum(known) / len(known))
    assert got["qa_chance"] == pytest.approx(0.25)
    assert got["corpus_loss"] == pytest.approx(loss, rel=1e-4)


def _implant_pack(tmp_path: Path) -> Path:
    pack = make_pack(tmp_path)
    write_jsonl(pack / "probes" / "qa.jsonl", QA)
    manifest = json.loads((pack / "pack.json").read_text())
    manifest["probes"]["qa"] = "probes/qa.jsonl"
    (pack / "pack.json").write_text(json.dumps(manifest))
    return pack


@pytest.mark.integration
def test_implant_stage_trains_the_model_the_method_unlearns(tmp_path):
    from workbench.run import Run

    pack = _implant_pack(tmp_path)
    data = tiny_config(tmp_path, report={"enabled": False})
    data["target"] = {"pack": str(pack), "block_size": 32, "retain_block_size": 32}
    plain = Run(config_from_dict(dict(data)), tmp_path / "plain", log=None, progress=False)
    data["implant"] = {
        "enabled": True,
        "epochs": 8,
        "batch_size": 2,
        "learning_rate": 3e-3,
        "save_steps": 4,
        "logging_steps": 1,
    }
    run = Run(config_from_dict(data), tmp_path / "run", log=None, progress=False)

    assert run.reference_spec == "tiny" and run.baseline_spec == str(run.dir / "implanted")
    assert plain.reference_spec is None and plain.baseline_spec == "tiny"
    with pytest.raises(WorkbenchError, match="needs stage 'implant'"):
        run.load_baseline()
    # the stages after implant depend on it; with the stage off, their fingerprints are those of a plain run
    assert run.fingerprint("reinforce") != plain.fingerprint("reinforce")

    run.run(("implant",))
    rec = run.stage_record("implant")
    assert (run.dir / "implanted" / "config.json").is_file()
    assert rec["after"]["corpus_loss"] < rec["before"]["corpus_loss"]  # it learned the target text
    assert rec["after"]["qa_items"] == 2 and rec["tokens"] > 0
    assert run.is_done("implant")
    # the method's baseline is now the implanted model, not the untouched one
    implanted = run.load_baseline().model
    from workbench.models import load_model

    reference = load_model("tiny").model
    assert any(not torch.equal(a, b) for a, b in zip(implanted.state_dict().values(), reference.state_dict().values()))
    # a rerun reuses the stage; a change of the implant settings redoes what depends on it
    again = Run(config_from_dict(data), tmp_path / "run", log=None, progress=False)
    assert again.is_done("implant")
    data["implant"]["epochs"] = 2
    changed = Run(config_from_dict(data), tmp_path / "run", update=True, log=None, progress=False)
    assert not changed.is_done("implant")
