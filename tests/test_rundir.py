"""The run directory has one owner (workbench/rundir.py): its names are the ones on disk, a real run writes nothing
outside them, the artifact check catches a damaged or missing file, and no other module spells a name itself."""

import ast
import shutil
from pathlib import Path

import pytest
from helpers import tiny_config

from workbench import rundir
from workbench.rundir import STAGE_ARTIFACTS, RunDir, checkpoints_of, label_shard, trained_stage

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"

# the layout as run directories already on disk hold it: a rename here breaks every earlier run
ON_DISK = {
    "config": "config.yaml",
    "lock": ".lock",
    "stages": "stages",
    "implanted": "implanted",
    "reinforced": "reinforced",
    "scores": "scores.parquet",
    "suggested_anchors": "suggested_anchors.csv",
    "labels": "labels",
    "unlearned": "unlearned",
    "report_json": "report.json",
    "report_dir": "report",
    "curated_anchors": "anchors.curated.json",
    "variants": "variants",
    "report_html": "report.html",
}


def test_the_names_are_the_ones_on_disk(tmp_path):
    d = RunDir(tmp_path)
    for attr, name in ON_DISK.items():
        assert getattr(d, attr) == tmp_path / name, attr
    assert d.stage_record("labels") == tmp_path / "stages" / "labels.json"
    assert d.tracking() == tmp_path / "tracking" and d.tracking("finetune") == tmp_path / "tracking" / "finetune"
    assert d.card == tmp_path / "unlearned" / "README.md"
    assert d.descriptor == tmp_path / "unlearned" / "workbench_method.json"
    assert d.report_probes == tmp_path / "report" / "probes.csv"
    assert d.checkpoints("reinforced") == tmp_path / "reinforced_ckpt" == checkpoints_of(d.reinforced)
    assert label_shard(d.labels, "positions", 3) == tmp_path / "labels" / "positions-00003.parquet"
    assert d.variant("a").path == tmp_path / "variants" / "a"
    assert RunDir(str(tmp_path)) == d and RunDir.default("x").path == Path("runs") / "x"


def test_the_stage_map_is_the_one_map():
    from workbench import notebook
    from workbench.run import STAGES

    assert notebook.STAGE_ARTIFACTS is STAGE_ARTIFACTS
    assert tuple(STAGE_ARTIFACTS) == STAGES
    assert STAGE_ARTIFACTS == {
        "implant": ("implanted",),
        "reinforce": ("reinforced",),
        "score": ("scores.parquet", "suggested_anchors.csv"),
        "labels": ("labels",),
        "finetune": ("unlearned",),
        "report": ("report.json", "report"),
    }
    assert [trained_stage(f) for f in ("implanted_ckpt", "reinforced", "unlearned_ckpt", "labels")] == [
        "implant",
        "reinforce",
        "finetune",
        None,
    ]


# the names only the run directory's owner may join onto a path (``x / "unlearned"``)
OWNED = {
    v
    for k, v in vars(rundir).items()
    if k.isupper() and isinstance(v, str) and k not in ("CHECKPOINT_SUFFIX", "CARD", "LABELS_MANIFEST")
}


def test_no_other_module_joins_a_run_directory_name():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                right = node.right
                if isinstance(right, ast.Constant) and right.value in OWNED:
                    found.append(f"{rel}:{node.lineno}: / {right.value!r}")
                if isinstance(right, ast.JoinedStr) and "stages" in ast.unparse(node.left):
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "use workbench.rundir.RunDir:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny run with every stage (the implant stage and the report on): its run directory."""
    from workbench.config import config_from_dict
    from workbench.run import Run

    root = tmp_path_factory.mktemp("rundir")
    cfg = tiny_config(
        root / "in",
        implant={"enabled": True, "epochs": 1, "batch_size": 2, "save_steps": 2, "logging_steps": 1},
        report={"enabled": True, "max_perplexity_tokens": 64},
    )
    run = Run(config_from_dict(cfg), root / "run", progress=False, log=None)
    run.run()
    for stage in STAGE_ARTIFACTS:
        assert run.is_done(stage), stage
    return root / "run"


@pytest.mark.integration
def test_a_run_writes_only_declared_paths(finished):
    from workbench.run import STAGES

    d = RunDir(finished)
    declared = {d.config, d.lock, d.stages, d.tracking(), *(p for s in STAGES for p in d.artifacts(s))}
    declared |= {d.checkpoints(m) for m in rundir.MODEL_STAGES}
    written = set(finished.iterdir())
    assert written <= declared, sorted(p.name for p in written - declared)
    assert {p for s in STAGES for p in d.artifacts(s)} <= written  # and every stage's files are there
    assert not any(d.checkpoints(m).exists() for m in rundir.MODEL_STAGES)  # removed once the model is saved
    assert set(d.stages.iterdir()) == {d.stage_record(s) for s in STAGES}
    assert d.card.is_file() and d.report_dir.is_dir()
    manifest = d.labels / rundir.LABELS_MANIFEST
    assert manifest.is_file()
    shards = {p for p in d.labels.iterdir() if p != manifest}
    assert all(p.name.startswith(("blocks-", "positions-")) and p.suffix == ".parquet" for p in shards)
    for stage in STAGES:
        assert d.artifact_problem(stage) is None, stage


DAMAGE = {
    "finetune": ("unlearned/model.safetensors", "delete", "holds no weights"),
    "implant": ("implanted/model.safetensors", "truncate", "is truncated"),
    "reinforce": ("reinforced/adapter_model.safetensors", "truncate", "is truncated"),
    "score": ("suggested_anchors.csv", "delete", "suggested_anchors.csv is missing"),
    "labels": ("labels/positions-00000.parquet", "truncate", "is damaged"),
    "report": ("report.json", "delete", "report.json is missing"),
}


@pytest.mark.integration
@pytest.mark.parametrize("stage", list(DAMAGE))
def test_the_artifact_check_catches_a_damaged_file(finished, tmp_path, stage):
    from workbench.config import load_config
    from workbench.run import Run

    copy = tmp_path / "run"
    shutil.copytree(finished, copy, symlinks=True)
    rel, how, message = DAMAGE[stage]
    target = copy / rel
    if how == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    problem = RunDir(copy).artifact_problem(stage)
    assert problem and message in problem, problem
    others = [s for s in STAGE_ARTIFACTS if s != stage]
    assert all(RunDir(copy).artifact_problem(s) is None for s in others)
    run = Run(load_config(RunDir(copy).config), copy, progress=False, log=None)
    assert not run.is_done(stage) and all(run.is_done(s) for s in others)
