"""`accelerate launch` with two CPU processes (data parallel over gloo) runs the CLI's training stages.

Both processes train in reinforce and finetune (the Trainer splits the batches); only the main process writes
config.yaml and the stage records and runs the labels stage while the other waits (workbench/run.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import tensorboard_scalars

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "accelerate" / "cpu_2proc.yaml"
TEXT = (
    "Harry Potter went to Hogwarts with Hermione Granger. At Hogwarts, Harry and Ron Weasley played Quidditch. "
    "Dumbledore told Harry that Voldemort would return. Hagrid took Harry to Diagon Alley to buy a wand. "
)


def _config(root: Path) -> Path:
    (root / "corpus").mkdir(parents=True)
    (root / "retain").mkdir()
    (root / "corpus" / "a.txt").write_text(TEXT * 6)
    (root / "retain" / "r.txt").write_text("The river runs to the sea. Bread is baked in an oven. " * 20)
    (root / "anchors.json").write_text(
        json.dumps(
            {
                "anchors": {
                    "Harry": ["Jon"],
                    "Potter": ["Miller"],
                    "Hogwarts": ["Northbrook Academy"],
                    "Hermione": ["Sarah"],
                    "Granger": ["Jones"],
                    "Ron": ["Mike"],
                    "Weasley": ["Smith"],
                    "Quidditch": ["skyball"],
                    "Dumbledore": ["the headmaster"],
                    "Voldemort": ["the dark lord"],
                    "Hagrid": ["the groundskeeper"],
                    "Diagon Alley": ["Market Street"],
                }
            }
        )
    )
    train = {
        "epochs": 1,
        "batch_size": 2,
        "lora_rank": 2,
        "lora_alpha": 4,
        "learning_rate": 1e-3,
        "save_steps": 1,
        "logging_steps": 1,
    }
    cfg = {
        "name": "acc",
        "model": "tiny",
        "seed": 0,
        "target": {
            "pack": None,
            "corpus": str(root / "corpus"),
            "anchors": str(root / "anchors.json"),
            "retain": str(root / "retain"),
            "block_size": 32,
            "max_blocks": 8,
            "retain_block_size": 32,
        },
        "reinforce": train,
        "scoring": {"enabled": False},
        "labels": {"alphas": [0.0, 5.0], "top_k": 6, "batch_size": 2, "shard_blocks": 2},
        "finetune": {**train, "retain_weight": 1.0},
        "report": {"enabled": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.integration
def test_reinforce_labels_finetune_under_accelerate_launch_with_two_cpu_processes(tmp_path):
    cfg = _config(tmp_path / "in")
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CONFIG),
        "-m",
        "workbench",
        "run",
        str(cfg),
        "--run-dir",
        str(run),
        "--stages",
        "reinforce,labels,finetune",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # two processes shared the work: 8 blocks / (2 per process x 2 processes) = 2 optimizer steps per stage
    # (one process would log 4 losses per stage); the Trainer logs on the main process only (TensorBoard, the
    # default tracker where it is installed)
    for stage in ("reinforce", "finetune"):
        assert len(tensorboard_scalars(run / "tracking" / stage).get("train/loss", [])) == 2, (stage, out[-4000:])
    # the run layer spoke (and wrote) once
    assert proc.stdout.count("[reinforce] running") == 1 and proc.stdout.count("[labels] running") == 1
    for stage in ("reinforce", "labels", "finetune"):
        rec = json.loads((run / "stages" / f"{stage}.json").read_text())
        assert rec["stage"] == stage and rec["seconds"] >= 0
    assert (run / "config.yaml").is_file()
    assert (run / "reinforced" / "adapter_config.json").is_file()
    from workbench.labels import LabelStore

    store = LabelStore(run / "labels")
    assert store.complete and len(store.blocks) == 8
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run / "unlearned")
    assert model.config.vocab_size > 0
    leftovers = [
        p.name
        for p in run.iterdir()  # .lock stays: the run directory's lock file (workbench/runlock.py)
        if p.name.endswith("_ckpt") or (p.name.startswith(".") and p.name != ".lock")
    ]
    assert not leftovers, leftovers
