"""Fault matrix: faults injected into runs on the tiny model, each graded from what the command did.

Every case injects one fault (kill -9 of a CLI run, a damaged or deleted artifact, a second process on the run
directory, a real full disk, a bad value, config, text file, model folder or name) and runs the command the user
would run. For each case the matrix records what was observed: the **exit code**, the **first line of stderr**,
what the command **left on disk** (files written or changed, temporary or partial leftovers) and, where the
command finished, whether labels and weights are **identical to a clean run**. The grade comes from those
observations only:

- **clear error**: exit 2, stderr is one line starting ``error:`` (no traceback), no temporary or partial files
  left, no file that existed before changed or deleted, nothing new written outside training checkpoints;
- **recovered**: exit 0, labels and weights identical to a clean run, no temporary or partial files left;
- **silent**: anything else (a traceback, exit 0 on bad input, a result that differs from a clean run, an error
  of several lines or one that left files half-written);
- **stuck**: the command did not end within its time limit.

Each case also states the outcome it is meant to reach; a case graded otherwise is marked ``(expected ...)``.

    python benchmarks/fault_matrix.py                  # every case against this checkout (a few minutes)
    python benchmarks/fault_matrix.py -k disk          # the cases whose name contains "disk"
    python benchmarks/fault_matrix.py --code OTHER_DIR # against another copy of the package (e.g. an older one)
    python benchmarks/fault_matrix.py --json out.json  # also write the observations

The full-disk cases mount a small tmpfs where the process may (root); elsewhere they are reported as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
BENCHMARKS = ROOT / "benchmarks"  # the sweep script: the --code copy's own where it has one
CASES: list[tuple[str, str, Callable]] = []
TEMP_NAME = re.compile(r"(^\..*\.(tmp|partial|old)$)|(\.partial$)")


def case(name: str, expect: str, says: str | None = None):
    """Register a case: ``fn(ctx) -> None`` runs the command(s) through ``ctx``. ``says``: a regular expression
    the error line must match (what is true about the fault: the file, key or value it names)."""

    def wrap(fn):
        CASES.append((name, expect, says, fn))
        return fn

    return wrap


class Skip(Exception):
    """The case cannot run here (the reason says why)."""


@dataclass
class Observation:
    case: str
    expect: str
    says: str | None = None
    exit_code: int | None = None
    first_line: str = ""
    stderr_lines: int = 0
    traceback: bool = False
    left: list[str] = field(default_factory=list)  # files the graded command wrote or changed
    temporary: list[str] = field(default_factory=list)  # temporary or partial files left behind
    changed: list[str] = field(default_factory=list)  # files that existed before and were changed or deleted
    damaged: list[str] = field(default_factory=list)  # files written that do not open (outside training checkpoints)
    identical: bool | None = None  # labels and weights against a clean run (None: not applicable)
    timed_out: bool = False
    seconds: float = 0.0
    grade: str = ""
    why: str = ""


# -- running a command and observing it ----------------------------------------------------------------------------
@contextlib.contextmanager
def captured_fds():
    """Capture file descriptors 1 and 2 (what Python, tqdm and the libraries' log handlers print)."""
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(files[0].fileno(), 1)
    os.dup2(files[1].fileno(), 2)
    box: dict = {}
    try:
        yield box
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for key, fh in zip(("out", "err"), files):
            fh.seek(0)
            box[key] = fh.read().decode("utf-8", errors="replace")
            fh.close()


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (but lock files) and a hash of its content."""
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and p.name != ".lock" and "__pycache__" not in p.parts
    }


class Context:
    """One case's folder, the clean reference run, and the graded command's observation."""

    def __init__(self, name: str, expect: str, says: str | None, root: Path, ref: dict):
        self.obs = Observation(name, expect, says)
        self.dir = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.dir.mkdir(parents=True)
        self.ref = ref
        self.watch = self.dir

    # inputs
    def raw(self, **over) -> dict:
        """The clean run's config (a fresh copy), ``over`` updating its sections."""
        raw = copy.deepcopy(self.ref["raw"])
        for k, v in over.items():
            raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
        return raw

    def config(self, name: str = "c.yaml", text: str | None = None, **over) -> Path:
        import yaml

        path = self.dir / name
        path.write_text(text if text is not None else yaml.safe_dump(self.raw(**over)))
        return path

    def finished_copy(self, *ignore: str) -> tuple[Path, Path]:
        """A copy of the clean finished run (without ``ignore`` folders) and its config."""
        run = self.dir / "run"
        shutil.copytree(self.ref["run"], run, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
        return self.ref["config"], run

    # commands
    def setup_cli(self, *argv: str) -> int:
        """A command that prepares the case (not graded)."""
        from workbench.cli import main

        with captured_fds():
            try:
                return main(list(argv))
            except Exception:  # noqa: BLE001 - a setup step that fails still leaves the fault for the graded step
                return 1

    def cli(self, *argv: str) -> None:
        """The graded command: ``workbench ARGV`` in this process."""
        from workbench.cli import main

        self.call(lambda: main(list(argv)))

    def call(self, fn: Callable[[], int | None]) -> None:
        """The graded command as a function: WorkbenchError is what the CLI prints as one line with exit 2."""
        from workbench.errors import WorkbenchError

        before = snapshot(self.watch)
        t0 = time.perf_counter()
        with captured_fds() as box:
            try:
                code = fn()
                code = 0 if code is None else int(code)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except WorkbenchError as exc:
                print(f"error: {exc}", file=sys.stderr)
                code = 2
            except BaseException:  # noqa: BLE001 - a traceback is an observation, not the harness's failure
                traceback.print_exc()
                code = 1
        self.observe(code, box["err"], before, time.perf_counter() - t0)

    def cli_process(self, *argv: str, kill_when: Callable[[], bool] | None = None, timeout: float = 300) -> int | None:
        """``python -m workbench ARGV`` as a child process; with ``kill_when``, SIGKILL it once that holds. Not graded."""
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "workbench", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + timeout
        while proc.poll() is None and time.time() < deadline:
            if kill_when is not None and kill_when():
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        if proc.poll() is None and time.time() >= deadline:
            os.kill(proc.pid, signal.SIGKILL)
            self.obs.timed_out = True
        return proc.wait()

    def observe(self, code: int, err: str, before: dict, seconds: float) -> None:
        o = self.obs
        lines = [line for line in err.splitlines() if line.strip()]
        o.exit_code, o.seconds = code, round(seconds, 2)
        o.first_line = lines[0][:300] if lines else ""
        o.stderr_lines = len(lines)
        o.traceback = "Traceback (most recent call last)" in err
        after = snapshot(self.watch)
        o.left = sorted(k for k, v in after.items() if before.get(k) != v)
        o.temporary = sorted(k for k in after if any(TEMP_NAME.search(part) for part in Path(k).parts))
        o.changed = sorted(
            [f"{k} (changed)" for k in before if k in after and after[k] != before[k]]
            + [f"{k} (deleted)" for k in before if k not in after]
        )
        # a checkpoint cut short by the fault is set aside by the rerun; every other file written must open
        o.damaged = [k for k in o.left if "_ckpt" not in k and not opens(self.watch / k)]

    def rerun(self, cfg: Path, run: Path) -> None:
        """The graded command of a recovery case: ``workbench run`` again, then its results against the clean run's."""
        self.cli("run", str(cfg), "--run-dir", str(run), "--no-progress")
        self.identical(run)

    def identical(self, run: Path, ref: Path | None = None) -> None:
        """Labels and weights of ``run`` against the clean run (or ``ref``)."""
        self.obs.identical = same_results(run, ref or self.ref["run"])


def opens(path: Path) -> bool:
    """Whether a file the command wrote is whole: JSON parses, a parquet footer and a safetensors header read, the
    safetensors data is all there."""
    try:
        if path.suffix in (".json", ".jsonl"):
            text = path.read_text(encoding="utf-8")
            [json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl" else json.loads(
                text
            )
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.ParquetFile(path).metadata
        elif path.suffix == ".safetensors":
            with open(path, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            return 8 + n + end <= path.stat().st_size
    except Exception:  # noqa: BLE001 - any failure to read is the observation
        return False
    return True


def same_results(run: Path, ref: Path) -> bool:
    import pyarrow.parquet as pq
    import torch
    from safetensors.torch import load_file

    for sub in ("labels",):
        names = sorted(p.name for p in (ref / sub).glob("*.parquet"))
        if names != sorted(p.name for p in (run / sub).glob("*.parquet")):
            return False
        if not all(pq.read_table(ref / sub / n).equals(pq.read_table(run / sub / n)) for n in names):
            return False
    for sub in ("unlearned", "reinforced"):
        for f in sorted((ref / sub).glob("*.safetensors")):
            if not (run / sub / f.name).is_file():
                return False
            a, b = load_file(f), load_file(run / sub / f.name)
            if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
                return False
    return True


def grade(o: Observation) -> tuple[str, str]:
    if o.timed_out:
        return "stuck", "did not end in time"
    if o.traceback:
        return "silent", "traceback"
    if o.exit_code == 2:
        if o.stderr_lines != 1 or not o.first_line.startswith("error: "):
            return "silent", f"exit 2 with {o.stderr_lines} lines on stderr"
        if o.temporary or o.changed or o.damaged:
            return "silent", f"exit 2 but left {(o.temporary or o.changed or o.damaged)[:3]}"
        if o.says and not re.search(o.says, o.first_line):
            return "silent", f"the message does not say /{o.says}/"
        return "clear error", ""
    if o.exit_code == 0:
        if o.temporary:
            return "silent", f"exit 0 but left {o.temporary[:3]}"
        if o.identical is True:
            return "recovered", ""
        return "silent", "exit 0 on bad input" if o.identical is None else "exit 0, results differ from a clean run"
    return "silent", f"exit {o.exit_code}"


# -- the cases ------------------------------------------------------------------------------------------------------
# recovery: the rerun repairs what the fault broke, and the results equal a clean run's


def cut(path: Path, keep: int | None = None) -> None:
    """Truncate ``path`` to ``keep`` bytes (default: half)."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 if keep is None else keep])


DAMAGE = [  # a finished run's files damaged as a crash, a kill or a careless hand leaves them
    ("labels folder deleted", lambda run: shutil.rmtree(run / "labels")),
    ("label shard truncated", lambda run: cut(run / "labels" / "blocks-00001.parquet", 200)),
    ("labels manifest damaged", lambda run: (run / "labels" / "manifest.json").write_text('{"fingerprint": "')),
    ("unlearned/model.safetensors truncated", lambda run: cut(run / "unlearned" / "model.safetensors")),
    (
        "reinforced/adapter_model.safetensors truncated",
        lambda run: cut(run / "reinforced" / "adapter_model.safetensors"),
    ),
    ("scores.parquet truncated", lambda run: cut(run / "scores.parquet")),
    ("stage record damaged", lambda run: (run / "stages" / "labels.json").write_text("{not json")),
]
for _name, _damage in DAMAGE:

    @case(_name, "recovered")
    def _(ctx, damage=_damage):
        cfg, run = ctx.finished_copy()
        damage(run)
        ctx.rerun(cfg, run)


def killed_in_finetune(ctx) -> tuple[Path, Path]:
    """A copy of the clean run whose finetune stage a CLI run was doing when it got SIGKILL (after a checkpoint)."""
    cfg, run = ctx.finished_copy("unlearned")
    (run / "stages" / "finetune.json").unlink()
    ckpt = run / "unlearned_ckpt"
    ctx.cli_process(
        "run",
        str(cfg),
        "--run-dir",
        str(run),
        "--no-progress",
        kill_when=lambda: bool(list(ckpt.glob("checkpoint-*/trainer_state.json"))),
    )
    if (run / "unlearned").exists():
        raise Skip("the run finished before the kill")
    return cfg, run


@case("kill -9 in finetune, rerun", "recovered")
def _(ctx):
    cfg, run = killed_in_finetune(ctx)
    ctx.rerun(cfg, run)


@case("kill -9 in finetune, rerun --update with other settings", "recovered")
def _(ctx):
    cfg, run = killed_in_finetune(ctx)
    other = ctx.config("lr.yaml", finetune={"learning_rate": 2e-3})
    ref = ctx.dir / "ref"
    shutil.copytree(ctx.ref["run"], ref, ignore=shutil.ignore_patterns("unlearned"))
    (ref / "stages" / "finetune.json").unlink()
    ctx.setup_cli("run", str(other), "--run-dir", str(ref), "--no-progress", "--update")
    ctx.watch = run
    ctx.cli("run", str(other), "--run-dir", str(run), "--no-progress", "--update")
    ctx.identical(run, ref)


@case("1e-3 in YAML (a number, as in YAML 1.2)", "recovered")
def _(ctx):
    import yaml

    text = yaml.safe_dump(ctx.raw()).replace("learning_rate: 0.001", "learning_rate: 1e-3")
    cfg = ctx.config("exp.yaml", text=text)
    run = ctx.dir / "run"
    ctx.rerun(cfg, run)


@contextlib.contextmanager
def nearly_full_disk(ctx):
    """A real tmpfs holding the clean run but its unlearned model, with 1 MiB to spare: too little for the model."""
    from helpers import small_filesystem

    used = sum(p.stat().st_size for p in ctx.ref["run"].rglob("*") if p.is_file() and "unlearned" not in p.parts)
    with small_filesystem(ctx.dir / "fs", f"{used // 1024 + 1024}k") as fs:
        if fs is None:
            raise Skip("cannot mount a tmpfs here")
        run = fs / "run"
        shutil.copytree(ctx.ref["run"], run, ignore=shutil.ignore_patterns("unlearned"))
        ctx.watch = run
        yield fs, run


@case("full disk (real tmpfs) in finetune, freed, rerun", "recovered")
def _(ctx):
    from helpers import resize_filesystem

    with nearly_full_disk(ctx) as (fs, run):
        ctx.setup_cli("run", str(ctx.ref["config"]), "--run-dir", str(run), "--no-progress")  # the disk fills
        resize_filesystem(fs, "1g")
        ctx.cli("run", str(ctx.ref["config"]), "--run-dir", str(run), "--no-progress")
        ctx.identical(run)


# clear errors: exit 2, one line naming the file, key or value, nothing half-written, nothing finished lost


@case(
    "full disk (real tmpfs) during the model save",
    "clear error",
    says=r"cannot write \S*run/unlearned\S*: the disk is full",
)
def _(ctx):
    with nearly_full_disk(ctx) as (fs, run):
        ctx.cli("run", str(ctx.ref["config"]), "--run-dir", str(run), "--no-progress")


@case("full disk (real tmpfs) in packs new", "clear error", says=r"cannot write \S*fs/mine: the disk is full")
def _(ctx):
    from helpers import SENTENCES, small_filesystem

    (ctx.dir / "corpus").mkdir()
    (ctx.dir / "corpus" / "a.txt").write_text(" ".join(SENTENCES * 2000))
    with small_filesystem(ctx.dir / "fs", "128k") as fs:
        if fs is None:
            raise Skip("cannot mount a tmpfs here")
        ctx.cli("packs", "new", str(fs / "mine"), "--corpus", str(ctx.dir / "corpus"))


@case(
    "full disk (simulated ENOSPC) on a stage record",
    "clear error",
    says=r"cannot write \S*finetune.json: the disk is full",
)
def _(ctx):
    import errno

    import workbench.run as run_module

    cfg, run = ctx.finished_copy("unlearned")
    saved = run_module.atomic_write_json

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    run_module.atomic_write_json = full
    try:
        ctx.cli("run", str(cfg), "--run-dir", str(run), "--no-progress")
    finally:
        run_module.atomic_write_json = saved


@case("a second process on the run directory", "clear error", says=r"in use by process \d+")
def _(ctx):
    cfg, run = ctx.finished_copy()
    hold = (
        "import sys, time\nfrom workbench.runlock import run_lock\nwith run_lock(sys.argv[1]):\n"
        "    print('held', flush=True)\n    time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(run)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        holder.stdout.readline()
        ctx.cli("run", str(cfg), "--run-dir", str(run), "--no-progress")
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()


@case("run directory's config.yaml damaged", "clear error", says=r"config.yaml is damaged")
def _(ctx):
    cfg, run = ctx.finished_copy()
    (run / "config.yaml").write_text("name: [unclosed\n")
    ctx.cli("run", str(cfg), "--run-dir", str(run), "--no-progress")


for _label, _over in [
    ("reinforce.epochs .inf", {"reinforce": {"epochs": float("inf")}}),
    ("finetune.learning_rate .nan", {"finetune": {"learning_rate": float("nan")}}),
    ("target.max_blocks 0", {"target": {"max_blocks": 0}}),
    ("labels.shard_blocks 0", {"labels": {"shard_blocks": 0}}),
    ("labels.alphas with .inf", {"labels": {"alphas": [0.0, float("inf")]}}),
    ("finetune.save_steps 0", {"finetune": {"save_steps": 0}}),
    (
        "report.probe_sets with an unknown name",
        {"report": {"enabled": True, "probe_sets": ["probability", "nonsense"]}},
    ),
    ("method unknown", {"method": "nonsense"}),
]:

    @case(f"config: {_label}", "clear error", says=_label.split()[0].replace(".", r"\."))
    def _(ctx, over=_over):
        cfg = ctx.config(**over)
        ctx.cli("run", str(cfg), "--run-dir", str(ctx.dir / "run"), "--no-progress")


@case("config: a key given twice", "clear error", says=r"c.yaml, line \d+.*'seed' appears twice")
def _(ctx):
    import yaml

    text = yaml.safe_dump(ctx.raw()).replace("seed: 0\n", "seed: 0\nseed: 1\n")
    ctx.cli("run", str(ctx.config(text=text)), "--run-dir", str(ctx.dir / "run"), "--no-progress")


@case("config: learning_rate '1e-3' in quotes", "clear error", says=r"finetune.learning_rate.*without quotes")
def _(ctx):
    import yaml

    text = yaml.safe_dump(ctx.raw()).replace("learning_rate: 0.001", "learning_rate: '1e-3'")
    ctx.cli("run", str(ctx.config(text=text)), "--run-dir", str(ctx.dir / "run"), "--no-progress")


YAML_LIST, YAML_BAD = "- name: a\n- model: tiny\n", "name: x\nmodel: [tiny\nseed: 0\n"
for _what, _text in (("a YAML list", YAML_LIST), ("malformed YAML", YAML_BAD)):
    for _door in ("run", "reinforce", "compare", "tune --methods-dir", "sweep.py", "notebooks (WORKBENCH_CONFIG)"):

        @case(
            f"{_door}: config is {_what}",
            "clear error",
            says=r"prompt.yaml" + (r", line 3" if _text == YAML_BAD else r": expected a mapping"),
        )
        def _(ctx, door=_door, text=_text):
            cfg = ctx.config("prompt.yaml", text=text)
            out = ctx.dir / "out"
            if door in ("run", "reinforce"):
                ctx.cli(door, str(cfg), "--run-dir", str(out), "--no-progress")
            elif door == "compare":
                ctx.cli("compare", str(cfg), "--out", str(out), "--no-progress")
            elif door.startswith("tune"):
                ctx.cli("tune", "--methods-dir", str(ctx.dir), "--only", "prompt", "--out", str(out), "--no-progress")
            elif door == "sweep.py":
                sys.path.insert(0, str(BENCHMARKS))
                import sweep

                grid = ctx.dir / "grid.yaml"
                grid.write_text("- {name: a, set: {seed: 1}}\n")
                ctx.call(lambda: sweep.main([str(cfg), str(grid), "--out", str(out), "--no-progress"]))
            else:
                ctx.call(lambda: notebook_setup(cfg, ctx.dir / "runs"))


@case("notebooks: WORKBENCH_CONFIG is a folder", "clear error", says=r"is a folder")
def _(ctx):
    ctx.call(lambda: notebook_setup(ctx.dir, ctx.dir / "runs"))


def notebook_setup(config: Path, runs: Path) -> None:
    from workbench.notebook import setup

    saved = {k: os.environ.pop(k, None) for k in ("WORKBENCH_RUN", "WORKBENCH_MODEL", "WORKBENCH_CONFIG")}
    os.environ["WORKBENCH_CONFIG"] = str(config)
    try:
        setup("00_quickstart", runs_dir=runs)
    finally:
        os.environ.pop("WORKBENCH_CONFIG")
        os.environ.update({k: v for k, v in saved.items() if v is not None})


for _what, _bytes in (
    ("latin-1", "Café society met Harry at the station in the evening.\n".encode("latin-1")),
    ("binary", bytes(range(256)) * 8),
):

    @case(f"packs new: {_what} corpus", "clear error", says=r"a.txt line \d+: not UTF-8 text \(byte 0x")
    def _(ctx, data=_bytes):
        (ctx.dir / "corpus").mkdir()
        (ctx.dir / "corpus" / "a.txt").write_bytes(data)
        ctx.cli("packs", "new", str(ctx.dir / "mine"), "--corpus", str(ctx.dir / "corpus"))


@case("run: a corpus file that is not UTF-8", "clear error", says=r"doc1.txt,? line 2: not UTF-8")
def _(ctx):
    import yaml
    from helpers import make_inputs

    raw = ctx.raw()
    raw["target"] = {**raw["target"], **make_inputs(ctx.dir / "in")}
    (ctx.dir / "in" / "corpus" / "doc1.txt").write_bytes(b"Harry went to\ncaf\xe9 Hogwarts\n")
    ctx.cli("run", str(ctx.config(text=yaml.safe_dump(raw))), "--run-dir", str(ctx.dir / "run"), "--no-progress")


for _label, _argv in [("--stages", ["--stages", "reinforce,nonsense"])]:

    @case(f"run {_label} with an unknown name", "clear error", says=r"nonsense.*reinforce, score")
    def _(ctx, argv=_argv):
        ctx.cli("run", str(ctx.config()), "--run-dir", str(ctx.dir / "run"), "--no-progress", *argv)


@case("eval --sections with an unknown name", "clear error", says=r"nonsense.*probes, collateral")
def _(ctx):
    ctx.cli("eval", "--model", "tiny", "--sections", "probes,nonsense", "--out", str(ctx.dir / "out"))


@case("compare --attacks with an unknown name", "clear error", says=r"nonsense.*priming, paraphrase")
def _(ctx):
    ctx.cli("compare", str(ctx.config()), "--attacks", "priming,nonsense", "--out", str(ctx.dir / "out"))


@case("tune --only with an unknown name", "clear error", says=r"nonsense.*lr, alpha")
def _(ctx):
    ctx.cli("tune", "--only", "lr,nonsense", "--out", str(ctx.dir / "out"))


@case("model folder with a broken config.json", "clear error", says=r"config.json line 2: invalid JSON")
def _(ctx):
    (ctx.dir / "m").mkdir()
    (ctx.dir / "m" / "config.json").write_text('{"model_type": "llama",\n "hidden_size": }\n')
    ctx.cli("run", str(ctx.config(model=str(ctx.dir / "m"))), "--run-dir", str(ctx.dir / "run"), "--no-progress")


@case("a text file given as a .gguf model", "clear error", says=r"m.gguf is not a GGUF file")
def _(ctx):
    (ctx.dir / "m.gguf").write_text("not a model")
    ctx.cli("run", str(ctx.config(model=str(ctx.dir / "m.gguf"))), "--run-dir", str(ctx.dir / "run"), "--no-progress")


@case("an unreachable hub id", "clear error", says=r"no-such-org-x/no-such-model")
def _(ctx):
    ctx.cli(
        "run", str(ctx.config(model="no-such-org-x/no-such-model")), "--run-dir", str(ctx.dir / "run"), "--no-progress"
    )


@case("anchor map that is a folder", "clear error", says=r"anchor map \S+ is a folder")
def _(ctx):
    import yaml

    raw = ctx.raw()
    raw["target"]["anchors"] = str(ctx.dir)
    ctx.cli("run", str(ctx.config(text=yaml.safe_dump(raw))), "--run-dir", str(ctx.dir / "run"), "--no-progress")


for _label, _text in [
    ("list under anchors", '{"format": "whp-anchors/1", "anchors": [{"Harry": ["Jon"]}]}'),
    ("a key given twice", '{"anchors": {"Harry": ["Jon"],\n "Hogwarts": ["Northbrook"],\n "Harry": ["Tom"]}}'),
    ("alternative equal to its key", '{"anchors": {"Harry": ["Jon", "Harry"]}}'),
    ("no key in the corpus", '{"anchors": {"Zzyzx": ["Jon"], "Qwerty": ["Tom"]}}'),
    ("a 606-character key", '{"anchors": {"' + "Harry " * 100 + 'Potter": ["Jon"]}}'),
]:

    @case(f"anchor map: {_label}", "clear error", says=r"anchors.json")
    def _(ctx, text=_text):
        import yaml

        raw = ctx.raw()
        (ctx.dir / "anchors.json").write_text(text, encoding="utf-8")
        raw["target"]["anchors"] = str(ctx.dir / "anchors.json")
        ctx.cli("run", str(ctx.config(text=yaml.safe_dump(raw))), "--run-dir", str(ctx.dir / "run"), "--no-progress")


@case("run directory is a file", "clear error", says=r"f is a file")
def _(ctx):
    (ctx.dir / "f").write_text("x")
    ctx.cli("run", str(ctx.config()), "--run-dir", str(ctx.dir / "f"), "--no-progress")


@case("run directory under a file", "clear error", says=r"lies under \S*f, which is a file")
def _(ctx):
    (ctx.dir / "f").write_text("x")
    ctx.cli("run", str(ctx.config()), "--run-dir", str(ctx.dir / "f" / "run"), "--no-progress")


@case("eval --out is a file", "clear error", says=r"out is a file")
def _(ctx):
    (ctx.dir / "out").write_text("keep")
    ctx.cli("eval", "--model", "tiny", "--out", str(ctx.dir / "out"))


# -- the matrix -----------------------------------------------------------------------------------------------------
def clean_run(root: Path) -> dict:
    import yaml
    from helpers import tiny_config

    inputs = root / "inputs"
    raw = tiny_config(inputs)  # writes the inputs
    cfg = root / "clean.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    from workbench.cli import main

    with captured_fds() as box:
        code = main(["run", str(cfg), "--run-dir", str(root / "clean"), "--no-progress"])
    if code != 0:
        raise SystemExit(f"the clean run failed:\n{box['err']}")
    return {"inputs": inputs, "raw": raw, "config": cfg, "run": root / "clean"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", default=str(ROOT), help="folder holding the workbench package to test (default: here)")
    ap.add_argument("-k", default=None, help="only the cases whose name contains this")
    ap.add_argument("--json", default=None, help="also write every observation to this JSON file")
    args = ap.parse_args()
    sys.path[:0] = [args.code, str(TESTS)]
    global BENCHMARKS
    if (Path(args.code) / "benchmarks" / "sweep.py").is_file():
        BENCHMARKS = Path(args.code) / "benchmarks"
    os.environ["PYTHONPATH"] = os.pathsep.join([args.code, str(TESTS), os.environ.get("PYTHONPATH", "")])
    selected = [c for c in CASES if not args.k or args.k.lower() in c[0].lower()]
    rows: list[Observation] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref = clean_run(root)
        for name, expect, says, fn in selected:
            ctx = Context(name, expect, says, root / "cases", ref)
            try:
                fn(ctx)
                ctx.obs.grade, ctx.obs.why = grade(ctx.obs)
            except Skip as exc:
                ctx.obs.grade, ctx.obs.why = "skipped", str(exc)
            except Exception as exc:  # noqa: BLE001 - the harness's own failure: reported, the matrix goes on
                ctx.obs.grade, ctx.obs.why = "harness error", f"{type(exc).__name__}: {exc}"
            ctx.obs.first_line = ctx.obs.first_line.replace(str(ctx.dir) + "/", "").replace(str(root) + "/", "")
            rows.append(ctx.obs)
            print(f"{ctx.obs.grade:<11} {name}" + (f"  [{ctx.obs.why}]" if ctx.obs.why else ""), flush=True)
    print()
    width = max(len(r.case) for r in rows)
    print(f"{'case':<{width}}  exit  left  same  grade        first line of stderr")  # left: files written
    for r in rows:
        same = {True: "yes", False: "NO", None: "-"}[r.identical]
        mark = f" (expected {r.expect})" if r.grade not in (r.expect, "skipped") else ""
        print(
            f"{r.case:<{width}}  {str(r.exit_code):>4}  {len(r.left):>4}  {same:>4}  {r.grade + mark:<11}  "
            f"{r.first_line[:110]}"
        )
    counts = Counter(r.grade for r in rows)
    ran = len(rows) - counts["skipped"]
    print(
        f"\ncases {ran}: clear errors {counts['clear error']}, recovered {counts['recovered']}, "
        f"silent {counts['silent']}, stuck {counts['stuck']}"
        + (f" ({counts['skipped']} skipped)" if counts["skipped"] else "")
    )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    if counts["harness error"]:
        print(f"{counts['harness error']} case(s) could not be set up (harness error)")
    return 0 if counts["silent"] == counts["stuck"] == counts["harness error"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
