"""The notebooks: each .ipynb is paired with its py:percent file and has no outputs, and each runs top to bottom.

One setting switches the model: ``WORKBENCH_MODEL`` (``tiny`` here, in seconds; the ``slow`` variant runs the
quickstart on the embedded SmolLM2). Notebooks execute with nbclient in a temporary working directory, so
their ``runs/`` folder never lands in the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import BROWSER_NOTEBOOKS, MARKERS, browser_tier_runs, execute_notebook

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"))
EXPECTED = [*BROWSER_NOTEBOOKS, "06_compare_methods", "07_ground_truth"]
TINY_TIMEOUT_S = 600  # a hung kernel fails the test; speed is measured in benchmarks/notebook_walk.py, not here

# the run directory each notebook's tiny run uses (the notebooks with settings of their own have their own)
TINY_RUN_DIRS = {"07_ground_truth": "ystrevane-tiny"}


def test_all_notebooks_are_present():
    assert NAMES == EXPECTED
    for name in NAMES:
        assert (NOTEBOOKS_DIR / f"{name}.ipynb").is_file(), (
            f"{name}.ipynb missing: run `jupytext --sync notebooks/{name}.py`"
        )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_paired_and_has_no_outputs(name):
    import jupytext
    import nbformat

    py = jupytext.read(NOTEBOOKS_DIR / f"{name}.py")
    ipynb = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    assert ipynb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert py.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert ipynb.metadata["kernelspec"]["name"] == "python3"
    cells = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert cells(ipynb) == cells(py), (
        f"{name}.ipynb is out of sync with {name}.py: run `jupytext --sync notebooks/{name}.py`"
    )
    for c in ipynb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, (
                f"{name}.ipynb has outputs: clear them before committing"
            )
    # the first code cell sets the notebook up through the package (one setting picks the model)
    first = next(c.source for c in ipynb.cells if c.cell_type == "code")
    assert f'notebook.setup("{name}")' in first


def test_setup_switches_the_model_with_one_setting(tmp_path, monkeypatch, capsys):
    from workbench import notebook

    monkeypatch.delenv("WORKBENCH_MODEL", raising=False)
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))
    nb = notebook.setup("00_quickstart")
    assert nb.model == "embedded" and nb.cfg.model == "embedded" and not nb.is_tiny
    assert nb.run_dir == tmp_path / "runs" / "notebooks-embedded"
    monkeypatch.setenv("WORKBENCH_MODEL", "tiny")
    nb = notebook.setup("00_quickstart")
    assert nb.is_tiny and nb.cfg.model == "tiny" and nb.cfg.target.block_size == 64
    assert nb.run_dir == tmp_path / "runs" / "notebooks-tiny" and nb.cfg.target.anchors is None
    assert "model 'tiny'" in capsys.readouterr().out
    monkeypatch.setenv("WORKBENCH_MODEL", "/models/my-llama")
    nb = notebook.setup("00_quickstart", runs_dir=tmp_path / "elsewhere")
    assert nb.cfg.model == "/models/my-llama" and nb.run_dir == tmp_path / "elsewhere" / "notebooks-my-llama"
    # a curated map saved by 02_anchor_editing is picked up, and said so
    curated = tmp_path / "runs" / "notebooks-tiny" / "anchors.curated.json"
    curated.parent.mkdir(parents=True, exist_ok=True)
    curated.write_text('{"Harry": ["Jon"]}')
    nb = notebook.setup("03_label_inspection", model="tiny")
    assert nb.cfg.target.anchors == str(curated) and nb.curated_anchors_path == curated
    assert "curated map" in repr(nb)
    assert notebook.setup("03_label_inspection", model="tiny", use_curated=False).cfg.target.anchors is None
    assert len(nb.probes("probability", split="dev")) == 8  # the tiny model uses a few probes
    assert all(p.split == "dev" for p in nb.probes("probability", split="dev", limit=100))


@pytest.fixture(scope="module")
def notebook_workdir(tmp_path_factory):
    """One working directory for the tiny runs: the notebooks share their run directory, as a user's do."""
    return tmp_path_factory.mktemp("notebooks")


def execute(name: str, workdir: Path, model: str, timeout: int) -> tuple[str, float]:
    """Run a notebook with nbclient; returns (all text outputs joined, seconds)."""
    env = {"WORKBENCH_MODEL": model, **({"OMP_NUM_THREADS": "1"} if model == "tiny" else {})}
    return execute_notebook(name, workdir, env, timeout)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.integration
def test_notebook_runs_on_the_tiny_model(name, notebook_workdir, request):
    if name in BROWSER_NOTEBOOKS and browser_tier_runs(request.config):
        pytest.skip("runs in JupyterLab in the browser tier (test_browser_notebooks), which checks the same markers")
    text, seconds = execute(name, notebook_workdir, "tiny", TINY_TIMEOUT_S)
    assert "model 'tiny'" in text
    for marker in MARKERS[name]:
        assert marker in text, f"{name}: expected {marker!r} in the outputs"
    print(f"{name} on the tiny model: {seconds:.0f} s")
    assert (notebook_workdir / "runs" / TINY_RUN_DIRS.get(name, "notebooks-tiny")).is_dir()
