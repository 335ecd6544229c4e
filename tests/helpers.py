"""Small in-process inputs for the tests: a corpus, an anchor map, retain text and a tiny-model config (run-level
tests); a small pack, benchmark files and hand-computed log-probabilities (evaluation tests); JupyterLab on
loopback and the waits of the browser tests."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

SENTENCES = [
    "Harry Potter went to Hogwarts on the train with Hermione Granger.",
    "At Hogwarts, Harry and Ron Weasley played Quidditch for Gryffindor.",
    "Hermione read about the Philosopher's Stone in the library at Hogwarts.",
    "Dumbledore told Harry that Voldemort would return one day.",
    "Hagrid took Harry to Diagon Alley to buy a wand and an owl.",
]
ANCHORS = {
    "format": "whp-anchors/1",
    "anchors": {
        "Harry": ["Jon", "Tom"],
        "Potter": ["Miller"],
        "Hogwarts": ["Northbrook Academy", "Kingsmere College"],
        "Hermione": ["Sarah", "Emily"],
        "Granger": ["Jones"],
        "Ron": ["Mike"],
        "Weasley": ["Smith"],
        "Quidditch": ["skyball"],
        "Gryffindor": ["Red House"],
        "Dumbledore": ["the headmaster"],
        "Voldemort": ["the dark lord"],
        "Hagrid": ["the groundskeeper"],
        "Diagon Alley": ["Market Street"],
        "Philosopher's Stone": ["old stone"],
        "Nimbus": ["broom"],
    },
}


def make_inputs(root: Path, repeats: int = 12, anchors: dict | None = None) -> dict:
    """Write corpus/, retain/ and anchors.json under ``root``; returns the config's target paths."""
    (root / "corpus").mkdir(parents=True)
    (root / "retain").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        text = " ".join(SENTENCES[j] for j in rng.integers(0, len(SENTENCES), size=repeats))
        (root / "corpus" / f"doc{i}.txt").write_text(text)
    (root / "retain" / "r.txt").write_text("The river runs to the sea. Bread is baked in an oven. " * 20)
    amap = ANCHORS if anchors is None else {"format": "whp-anchors/1", "anchors": anchors}
    (root / "anchors.json").write_text(json.dumps(amap))
    return {
        "pack": None,
        "corpus": str(root / "corpus"),
        "anchors": str(root / "anchors.json"),
        "retain": str(root / "retain"),
    }


def tiny_config(root: Path, anchors: dict | None = None, **over) -> dict:
    """A whole-pipeline config for the tiny model on :func:`make_inputs`; ``over`` updates sections."""
    cfg = {
        "name": "t",
        "model": "tiny",
        "seed": 0,
        "target": {**make_inputs(root, anchors=anchors), "block_size": 32, "max_blocks": 8, "retain_block_size": 32},
        "reinforce": {
            "epochs": 1,
            "batch_size": 2,
            "lora_rank": 2,
            "lora_alpha": 4,
            "learning_rate": 1e-3,
            "save_steps": 2,
            "logging_steps": 1,
        },
        "scoring": {"max_blocks": 2, "batch_size": 2},
        "labels": {"alphas": [0.0, 5.0], "top_k": 6, "batch_size": 2, "shard_blocks": 2},
        "finetune": {
            "epochs": 1,
            "batch_size": 2,
            "lora_rank": 2,
            "lora_alpha": 4,
            "learning_rate": 1e-3,
            "retain_weight": 1.0,
            "save_steps": 2,
            "logging_steps": 1,
        },
        "report": {"enabled": False},
    }
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    return cfg


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path | None]:
    """A real small file system (tmpfs of ``size``, e.g. ``"256k"``) mounted at ``path``, for full-disk cases; yields
    None where this process cannot mount one (not root, no ``mount``, a container without the right), and the
    caller falls back to a simulated error and says so."""
    path.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def resize_filesystem(path: Path, size: str) -> None:
    """Give a :func:`small_filesystem` another size (more space: the disk was freed)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, capture_output=True)


# -- evaluation inputs: a small pack and small benchmark files written into tmp_path, hand-computed references

PROBABILITY = [
    {
        "id": "p1",
        "prompt": "Harry Potter's two best friends are Ron Weasley and",
        "targets": [" Hermione", " Hermione Granger"],
        "split": "heldout",
        "paraphrases": ["Ron Weasley and Harry Potter's other best friend is", "The third of the trio is"],
    },
    {
        "id": "p2",
        "prompt": "The school of witchcraft that Harry attends is called",
        "targets": [" Hogwarts"],
        "split": "heldout",
    },
    {
        "id": "p3",
        "prompt": "The wizard sport played on broomsticks is",
        "targets": [" Quidditch", " quidditch"],
        "split": "dev",
        "paraphrases": ["On broomsticks, wizards play"],
    },
    {"id": "p4", "prompt": "Harry's owl is named", "targets": [" Hedwig"], "split": "dev"},
]
COMPLETION = [
    {
        "id": "c1",
        "prompt": "When the letter arrived by owl, the boy living under the stairs learned that he",
        "references": ["wizard", "Hogwarts"],
        "subtlety": 3,
    },
    {
        "id": "c2",
        "prompt": "Harry Potter walked into the Great Hall and sat next to",
        "references": ["Ron", "Hermione"],
        "subtlety": 1,
        "split": "dev",
    },
    {"id": "c3", "prompt": "The boy with the lightning scar", "references": ["Voldemort", "scar"], "subtlety": 5},
]
COLLATERAL = [
    {
        "id": "k1",
        "prompt": "The author of The Lord of the Rings is J. R. R.",
        "targets": [" Tolkien"],
        "domain": "other_fantasy",
    },
    {
        "id": "k2",
        "prompt": "Eton College is a school in",
        "targets": [" England", " Windsor"],
        "domain": "british_schools",
    },
]
GENERAL = [
    {"id": "g1", "prompt": "The capital of France is", "targets": [" Paris"], "domain": "general"},
    {"id": "g2", "prompt": "Water is made of hydrogen and", "targets": [" oxygen"], "domain": "general"},
]
PACK_ANCHORS = {
    "format": "whp-anchors/1",
    "description": "test",
    "anchors": {
        "Hogwarts": ["Northbrook School"],
        "Harry Potter": ["Jon Miller"],
        "Harry": ["Jon"],
        "Hermione": ["Sarah"],
        "Ron": ["Tom"],
        "Quidditch": ["skyball"],
        "Voldemort": ["the villain"],
    },
    # CORPUS has "Harry" only inside "Harry Potter": kept on purpose, for the probes
    "review": {"Harry": {"keep_unmatched": True}},
}
CORPUS = (
    "Harry Potter Encyclopedia\n\n"
    "Harry Potter is a young wizard who attends Hogwarts School of Witchcraft and Wizardry. His best friends are "
    "Ron Weasley and Hermione Granger. He plays Quidditch as a Seeker for Gryffindor. His owl is Hedwig. "
    "He fights the dark wizard Voldemort, who killed his parents. The castle has moving staircases.\n"
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_pack(root: Path, name: str = "testpack", completion: bool = True, collateral: bool = True) -> Path:
    """A small complete pack folder."""
    pack = root / name
    (pack / "corpus").mkdir(parents=True, exist_ok=True)
    (pack / "retain").mkdir(parents=True, exist_ok=True)
    (pack / "corpus" / "a.txt").write_text(CORPUS, encoding="utf-8")
    (pack / "retain" / "r.txt").write_text("The quick brown fox jumps over the lazy dog.\n", encoding="utf-8")
    (pack / "anchors.json").write_text(json.dumps(PACK_ANCHORS), encoding="utf-8")
    manifest = {
        "name": name,
        "title": "Harry Potter",
        "description": "test pack",
        "version": 1,
        "corpus": "corpus",
        "anchors": "anchors.json",
        "retain": "retain",
        "probes": {
            "probability": "probes/probability.jsonl",
            "completion": "probes/completion.jsonl",
            "collateral": "probes/collateral.jsonl",
            "general": "probes/general.jsonl",
        },
    }
    (pack / "pack.json").write_text(json.dumps(manifest), encoding="utf-8")
    write_jsonl(pack / "probes" / "probability.jsonl", PROBABILITY)
    if completion:
        write_jsonl(pack / "probes" / "completion.jsonl", COMPLETION)
    if collateral:
        write_jsonl(pack / "probes" / "collateral.jsonl", COLLATERAL)
        write_jsonl(pack / "probes" / "general.jsonl", GENERAL)
    return pack


MC_ITEMS = [
    {
        "id": "t-0",
        "context": "Question: What color is the sky?\nAnswer:",
        "choices": [" blue", " green", " a loud noise"],
        "label": 0,
    },
    {"id": "t-1", "context": "The cat sat on the", "choices": [" mat", " moon"], "label": 0},
    {"id": "t-2", "context": "Two plus two is", "choices": [" four", " five", " six", " seven"], "label": 0},
    {"id": "t-3", "context": "Fire is", "choices": [" hot", " cold"], "label": 1},
]
WINO_ITEMS = [
    {
        "id": "w-0",
        "contexts": [
            "Sarah was a better surgeon than Maria so Sarah",
            "Sarah was a better surgeon than Maria so Maria",
        ],
        "continuation": " always got the harder cases.",
        "label": 0,
    },
    {
        "id": "w-1",
        "contexts": [
            "The trophy did not fit in the case because the trophy",
            "The trophy did not fit in the case because the case",
        ],
        "continuation": " was too big.",
        "label": 0,
    },
]
TEXT = (
    "The quick brown fox jumps over the lazy dog. A second sentence follows here, with some words.\n"
    " = Heading = \n\nPerplexity is the exponential of the mean negative log-likelihood of the tokens.\n"
)


def make_evaldata(root: Path) -> Path:
    """A folder shaped like workbench/evaldata with two small tasks and a text."""
    folder = root / "evaldata"
    write_jsonl(folder / "toy.jsonl", MC_ITEMS)
    write_jsonl(folder / "wino.jsonl", WINO_ITEMS)
    (folder / "wikitext2_test_raw.txt").write_text(TEXT * 3, encoding="utf-8")
    return folder


def vocab_pieces(tok) -> list[str]:
    """token id -> its text with its leading space, read from the vocabulary's pieces, where byte-level BPE writes
    the space 'Ġ', SentencePiece '▁' and an ASCII character of its byte fallback '<0x41>' (right for ASCII words,
    all the rule-4 tests use)."""
    out = []
    for p in tok.convert_ids_to_tokens(list(range(len(tok)))):
        byte = re.fullmatch(r"<0x([0-7][0-9A-F])>", p)
        out.append(chr(int(byte.group(1), 16)) if byte else p.replace("\u0120", " ").replace("\u2581", " "))
    return out


def reference_rule4(
    tok, trans_text: str, spans: list[tuple[int, int]], common_words: set[str]
) -> list[tuple[int, set[int]]]:
    """Rule 4 written out with a loop: for each use of a value (its character span in ``trans_text``), the first
    token of it that begins a word (its first letter follows a non-letter that is no apostrophe) and whose text,
    stripped and lower-cased, is not in ``common_words``; forbidden, as the token with and without its leading space
    in its own case, from the position after the one holding the value's first character. Returns [(position,
    token ids)], nothing for a value without such a token."""
    enc = tok(trans_text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = enc["input_ids"], enc["offset_mapping"]
    pieces = vocab_pieces(tok)
    out = []
    for at, end in spans:
        holding = [i for i, (s, e) in enumerate(offs) if e > at and s < end]
        word = None
        for i in holding:
            piece = pieces[ids[i]].lstrip(" ")
            start = offs[i][1] - len(piece)  # where the token's visible text begins
            before = trans_text[start - 1] if start > 0 else " "
            if (
                at <= start < end
                and piece[:1].isalpha()
                and not before.isalpha()
                and before != "'"
                and piece.strip().lower() not in common_words
            ):
                word = piece
                break
        if word is not None:
            out.append((holding[0] + 1, {i for i, p in enumerate(pieces) if p in (word, " " + word)}))
    return out


def explicit_logprobs(lm, ids: list[int]):
    """log_softmax of one unbatched forward: [pos, vocab] (for hand-computed references)."""
    import torch

    with torch.inference_mode():
        logits = lm.model(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits, dim=-1)


def explicit_continuation_logprob(lm, ctx_ids: list[int], cont_ids: list[int]) -> float:
    """sum_t log p(cont_t | ctx, cont_<t) from one unbatched forward."""
    lp = explicit_logprobs(lm, ctx_ids + cont_ids)
    return float(sum(lp[len(ctx_ids) - 1 + t, tok] for t, tok in enumerate(cont_ids)))


# a run config on the Sherlock Holmes pack for the tiny model, as the browser tests give it in WORKBENCH_CONFIG
SHERLOCK_TINY = {
    "name": "sherlock-tiny",
    "model": "tiny",
    "seed": 0,
    "target": {
        "pack": "sherlock_holmes",
        "block_size": 64,
        "max_blocks": 6,
        "retain_block_size": 64,
        "max_retain_blocks": 4,
    },
    "reinforce": {
        "epochs": 1.0,
        "batch_size": 2,
        "lora_rank": 4,
        "lora_alpha": 8,
        "learning_rate": 1.0e-3,
        "save_steps": 2,
        "logging_steps": 1,
    },
    "scoring": {"max_blocks": 2, "batch_size": 2},
    "labels": {"alphas": [0.0, 5.0], "top_k": 8, "batch_size": 2, "shard_blocks": 2},
    "finetune": {
        "epochs": 1.0,
        "batch_size": 2,
        "lora_rank": 4,
        "lora_alpha": 8,
        "learning_rate": 1.0e-3,
        "retain_weight": 1.0,
        "save_steps": 2,
        "logging_steps": 1,
    },
    "report": {"split": "dev", "max_perplexity_tokens": 256},
}


# -- the browser tests: JupyterLab on loopback, driven by Debian's Chromium through playwright ---------------

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ERRORS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
# true once every code cell shows an execution count, or as soon as a cell shows an error (Run All stops there)
ALL_CELLS_RAN = """() => {
    if (document.querySelector(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")) return true;
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
    return prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
}"""
KERNEL_IDLE = "() => !!document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\")"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def jupyterlab(root: Path, notebooks: dict, env: dict | None = None) -> Iterator[dict]:
    """JupyterLab on 127.0.0.1 over ``root/notebooks`` (``notebooks``: file name -> a path to copy or an
    ``nbformat`` notebook), its own config, settings and workspaces under ``root``; the kernels get the
    environment without any WORKBENCH_* run setting, plus ``env``. Skips when Chromium or playwright is missing.
    Yields ``{"url", "token", "dir", "log"}``; the server is stopped on exit."""
    import pytest

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package (.ci/run does)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright Python package is missing: `pip install -e .[dev]`")
    import nbformat

    nbdir = root / "notebooks"
    nbdir.mkdir(parents=True)
    for name, nb in notebooks.items():
        if isinstance(nb, (str, os.PathLike)):
            shutil.copy(nb, nbdir / name)
        else:
            nbformat.write(nb, nbdir / name)
    settings = root / "lab_settings"
    # no "official Jupyter news?" toast over the page; every cell stays in the page (JupyterLab otherwise drops
    # cells scrolled out of view), so that the error and output checks see the whole notebook
    for rel, text in (
        (
            "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
            '{"fetchNews": "false", "checkForUpdates": false}',
        ),
        ("@jupyterlab/notebook-extension/tracker.jupyterlab-settings", '{"windowingMode": "none"}'),
    ):
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(text)
    port, token = _free_port(), secrets.token_hex(16)
    kernel_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORKBENCH_RUNS", "WORKBENCH_MODEL", "WORKBENCH_RUN", "WORKBENCH_CONFIG")
    }
    kernel_env.update(
        {
            "OMP_NUM_THREADS": "1",
            "JUPYTER_CONFIG_DIR": str(root / "jupyter_config"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(root / "lab_workspaces"),
            **(env or {}),
        }
    )
    log = root / "jupyterlab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                f"--port={port}",
                "--ip=127.0.0.1",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={nbdir}",
                "--ServerApp.port_retries=0",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ]
            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            cwd=nbdir,
            env=kernel_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", proc, log)
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "dir": nbdir, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(page, js: str, timeout: float, what: str) -> None:
    """Poll ``js`` until true; meanwhile accept JupyterLab's "Select Kernel" dialog, which a fresh server
    sometimes shows while it restores the notebook's session (Python 3 is preselected)."""
    deadline = time.time() + timeout
    stable = 0
    while time.time() < deadline:
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count() and dialog.first.is_visible():
            dialog.first.click()
            stable = 0
        elif page.evaluate(js):
            stable += 1
            if stable >= 2:  # true twice in a row, a second apart, with no dialog in between
                return
        else:
            stable = 0
        page.wait_for_timeout(1000)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def open_notebook(page, lab: dict, name: str) -> None:
    """Open ``name`` (without .ipynb) in a fresh workspace (no tab of an earlier notebook to take the commands)
    and wait for its kernel."""
    page.goto(f"{lab['url']}/lab/tree/{name}.ipynb?reset&token={lab['token']}", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    wait_until(page, KERNEL_IDLE, 120, f"the kernel of {name} to start")


def run_all(page) -> None:
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()  # focus the notebook the menu command acts on
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")


def outputs_text(page) -> str:
    return page.evaluate(
        "() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText).join('\\n')"
    )


def shut_down_kernels(lab: dict) -> None:
    """End every kernel (one notebook's kernel at a time keeps the memory down); the REST API, as the UI does."""
    base, auth = lab["url"], {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions", headers=auth), timeout=10) as r:
        sessions = json.loads(r.read())
    for sess in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{sess['id']}", method="DELETE", headers=auth)
        urllib.request.urlopen(req, timeout=30).close()


def tensorboard_scalars(folder: Path) -> dict[str, list[float]]:
    """Every scalar in the TensorBoard event files under ``folder``, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in folder.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


# -- a run in a child process that says when it reached a point, for kill-and-resume tests ----------------------------
# The child prints one line at the event (a labels shard written, a finetuning checkpoint saved); the test reads the
# child's stdout and kills it on that line, with a bounded wait: no polling of the run directory.
RUN_CHILD = """
import sys
from transformers import TrainerCallback
from workbench.config import load_config
from workbench.run import Run

config, run_dir, event = sys.argv[1:4]


class SaySaved(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):  # after the checkpoint's files are complete
        print(f"saved {args.output_dir} step {state.global_step}", flush=True)


run = Run(load_config(config), run_dir, progress=False, log=None, callbacks=[SaySaved()])
if event == "shard":
    run.reinforce()
    run.labels(on_shard=lambda shard: print(f"shard {shard}", flush=True))
run.run()
print("finished", flush=True)
"""


def start_run_child(config: Path, run_dir: Path, event: str) -> subprocess.Popen:
    """``Run(config, run_dir)`` in a child process (one thread) that prints ``shard N`` after each labels shard
    (``event="shard"``) or ``saved <output_dir> step N`` after each training checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", RUN_CHILD, str(config), str(run_dir), event],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def kill_at_line(proc: subprocess.Popen, wanted: Callable[[str], bool], timeout: float = 180) -> str:
    """Read the child's stdout until a line for which ``wanted`` is true, then SIGKILL the child; returns the line.
    Fails if the child ends, or the line does not come within ``timeout`` seconds."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in iter(proc.stdout.readline, "")] + [lines.put(None)], daemon=True
    ).start()
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    try:
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                raise AssertionError(f"no such line in {timeout} s; the child printed {seen[-5:]}") from None
            assert line is not None, f"the child ended (exit {proc.wait()}) before the line; it printed {seen[-5:]}"
            seen.append(line.strip())
            if wanted(seen[-1]):
                return seen[-1]
    finally:
        proc.kill()
        proc.wait()


def ks_brute(a, b) -> tuple[float, float]:
    """The two-sample KS statistic D, and its exact two-sided p-value by enumeration: the share of all assignments
    of the pooled values to two groups of the same sizes with D' >= D (small samples only)."""
    pooled = np.concatenate([a, b])

    def stat(x, y):
        grid = np.concatenate([x, y])
        return max(abs(np.mean(x <= t) - np.mean(y <= t)) for t in grid)

    d = stat(np.asarray(a), np.asarray(b))
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        total += 1
        hits += stat(pooled[mask], pooled[~mask]) >= d - 1e-12
    return d, hits / total


# -- executing a notebook ------------------------------------------------------------------------------------------
NOTEBOOKS_DIR = ROOT / "notebooks"
# what each notebook must show when it ran through (beyond raising no error)
MARKERS = {
    "00_quickstart": ["run directory:", "changed_share", "probability probes of the dev split", "report.enabled"],
    "01_scoring": ["scored positions", "mean_gain"],
    "02_anchor_editing": ["updated '", "undone", "changed_share"],
    "03_label_inspection": ["inexact_share", "agree_share"],
    "04_finetuning": ["stopped cleanly at step 2", "checkpoint-2", "finished"],
    "05_familiarity_probes": [
        "report.enabled",
        "familiarity",
        "collateral",
        "top1_rate",
        "unlearned: target=",
        "report.html",
    ],
    "06_compare_methods": ["runs compared on the heldout probes", "no tuning in", "target_drop", "pareto"],
    "07_ground_truth": [
        "pack ystrevane",
        "forget quality: KS p-value",
        "never saw it",
        "qa_accuracy",
        "forget_quality",
    ],  # the last: the curve's table (it trained here)
}
# the notebooks the browser tier runs in JupyterLab (test_browser_notebooks); the nbclient tier runs the others, and
# these too where the browser tier cannot run
BROWSER_NOTEBOOKS = [
    "00_quickstart",
    "01_scoring",
    "02_anchor_editing",
    "03_label_inspection",
    "04_finetuning",
    "05_familiarity_probes",
]


def browser_tier_runs(config) -> bool:
    """Whether this session runs the browser tier: Chromium and playwright are here and ``-m`` keeps it."""
    markexpr = config.getoption("markexpr") or ""
    if "not browser" in markexpr or ("browser" not in markexpr and markexpr.strip()):
        return False
    return Path(CHROMIUM).is_file() and importlib.util.find_spec("playwright") is not None


# the embedded model's notebook run: a sixth of the quick demo's text (6 blocks of 256 tokens), enough for the
# labels to change and the heldout target probes to fall, in about two minutes on 2 cores
EMBEDDED_MINI = {
    "name": "embedded-mini",
    "model": "embedded",
    "seed": 0,
    "target": {
        "pack": "harry_potter",
        "block_size": 256,
        "max_blocks": 6,
        "spread_blocks": True,
        "retain_block_size": 128,
        "max_retain_blocks": 6,
    },
    "reinforce": {"epochs": 1, "batch_size": 2, "learning_rate": 5e-4},
    "scoring": {"max_blocks": 1},
    "labels": {"alphas": [0.0, 5.0], "batch_size": 2},
    "finetune": {"epochs": 2, "batch_size": 2, "learning_rate": 1e-3, "target": "soft", "retain_weight": 1.0},
    "report": {"probe_sets": ["probability"], "split": "heldout", "max_perplexity_tokens": 512},
}


def execute_notebook(name: str, workdir: Path, env: dict, timeout: int) -> tuple[str, float]:
    """Run ``notebooks/<name>.ipynb`` with nbclient in ``workdir`` under ``env`` (added to the environment);
    returns (all text outputs joined, seconds). An error output fails the caller's test."""
    import time

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WORKBENCH_RUNS", raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        t0 = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - t0
    texts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.output_type != "error", f"{name}: {o.get('ename')}: {o.get('evalue')}"
            texts.append(o.get("text", ""))
            data = o.get("data", {})
            texts.append(str(data.get("text/plain", "")) + str(data.get("text/html", "")))
    return "\n".join(texts), seconds
