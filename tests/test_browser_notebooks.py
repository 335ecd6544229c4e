"""A real browser through every notebook: JupyterLab on loopback, headless Chromium, the tiny model, and
``WORKBENCH_CONFIG`` pointing at a config on the Sherlock Holmes pack.

- all six notebooks run top to bottom (Run All) with no error output; 05 trains nothing (it reuses 04's model);
- the training monitor's stop button, clicked in the browser while ``monitor.run`` trains in a cell, stops the
  training within one step, and running the cell again resumes from the checkpoint.

Screenshots of each notebook go to ``tests/artifacts/notebook_<name>.png``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from test_browser import (ALL_CELLS_RAN, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, KERNEL_IDLE, ROOT, _free_port,  # noqa: F401
                          _wait_for_server, _wait_until)

pytestmark = pytest.mark.browser

NOTEBOOKS = ["00_quickstart", "01_scoring", "02_anchor_editing", "03_label_inspection", "04_finetuning",
             "05_familiarity_probes"]
SHERLOCK_TINY = {
    "name": "sherlock-tiny", "model": "tiny", "seed": 0,
    "target": {"pack": "sherlock_holmes", "block_size": 64, "max_blocks": 6, "retain_block_size": 64,
               "max_retain_blocks": 4},
    "reinforce": {"epochs": 1.0, "batch_size": 2, "lora_rank": 4, "lora_alpha": 8, "learning_rate": 1.0e-3,
                  "save_steps": 2, "logging_steps": 1},
    "scoring": {"max_blocks": 2, "batch_size": 2},
    "labels": {"alphas": [0.0, 5.0], "top_k": 8, "batch_size": 2, "shard_blocks": 2},
    "finetune": {"epochs": 1.0, "batch_size": 2, "lora_rank": 4, "lora_alpha": 8, "learning_rate": 1.0e-3,
                 "retain_weight": 1.0, "save_steps": 2, "logging_steps": 1},
    "report": {"split": "dev", "max_perplexity_tokens": 256},
}
# a notebook that trains long enough to click stop in the browser, the way 00 and 01 train (monitor.run)
STOP_CELLS = [
    "import copy\nfrom IPython.display import display\nfrom workbench import notebook\n"
    "from workbench.widgets import TrainingMonitor\n"
    "nb = notebook.setup('stop_test')\ncfg = copy.deepcopy(nb.cfg)\n"
    "cfg.reinforce.epochs = 150.0\ncfg.reinforce.save_steps = 10_000\nrun = nb.run(cfg=cfg, variant='stop-test')\n"
    "import time\nfrom transformers import TrainerCallback\n"
    "class Slow(TrainerCallback):  # tiny-model steps take milliseconds; an embedded-model step takes seconds\n"
    "    def on_step_end(self, *a, **k): time.sleep(0.1)\n"
    "run.callbacks.append(Slow())",
    "monitor = TrainingMonitor('stop test')\ndisplay(monitor)\nmonitor.run(run.reinforce)\n"
    "print(f'STOP requested={monitor.stop_requested_step} stopped={monitor._controller.stopped_at} "
    "total={monitor.max_steps} state={monitor.state}')",
    "monitor.run(run.reinforce)\nprint(f'RESUMED from={monitor._phase_step0} state={monitor.state}')",
]

ERRORS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"


@pytest.fixture
def lab(tmp_path):
    import os
    import secrets
    import subprocess
    import sys

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package")
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", nbdir)
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in STOP_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, nbdir / "stop_test.ipynb")
    config = tmp_path / "sherlock_tiny.yaml"
    config.write_text(yaml.safe_dump(SHERLOCK_TINY))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "WORKBENCH_CONFIG": str(config), "OMP_NUM_THREADS": "1",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab_settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab_workspaces")}
    for var in ("WORKBENCH_RUNS", "WORKBENCH_MODEL", "WORKBENCH_RUN"):
        env.pop(var, None)
    notif = tmp_path / "lab_settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    # every cell stays in the page (JupyterLab otherwise drops cells scrolled out of view), so that the error
    # and output checks see the whole notebook
    tracker = tmp_path / "lab_settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}", "--ServerApp.port_retries=0",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            cwd=nbdir, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", proc, log)
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "dir": nbdir}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open(page, lab, name):
    # ?reset: a fresh workspace with this notebook alone (no tab of an earlier notebook to take the commands)
    page.goto(f"{lab['url']}/lab/tree/{name}.ipynb?reset&token={lab['token']}", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    _wait_until(page, KERNEL_IDLE, 120, f"the kernel of {name} to start")


def _run_all(page):
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()  # focus the notebook the menu command acts on
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")


def _outputs_text(page) -> str:
    return page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText).join('\\n')")


def _shut_down_kernels(lab) -> None:
    """End every kernel (one notebook's kernel at a time keeps the memory down); the REST API, as the UI does."""
    import urllib.request

    base, auth = lab["url"], {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/sessions", headers=auth), timeout=10) as r:
        sessions = json.loads(r.read())
    for sess in sessions:
        req = urllib.request.Request(f"{base}/api/sessions/{sess['id']}", method="DELETE", headers=auth)
        urllib.request.urlopen(req, timeout=30).close()


def test_every_notebook_and_the_stop_button(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        seconds = {}
        try:
            for name in NOTEBOOKS:
                t0 = time.time()
                _open(page, lab, name)
                _run_all(page)
                _wait_until(page, ALL_CELLS_RAN, 400, f"all cells of {name} to run")
                seconds[name] = time.time() - t0
                errors = page.locator(ERRORS)
                text = _outputs_text(page)
                page.screenshot(path=str(ARTIFACTS / f"notebook_{name}.png"), full_page=True)
                for i, sel in enumerate((".wb-training-monitor", ".js-plotly-plot", ".wb-probe-comparer",
                                         ".wb-monitor-summary")):
                    found = page.locator(f"{sel} >> visible=true")
                    if found.count():  # the parts worth looking at, one screenshot each
                        found.last.scroll_into_view_if_needed(timeout=5000)
                        page.screenshot(path=str(ARTIFACTS / f"notebook_{name}_{i}.png"))
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                assert "model 'tiny'" in text and "sherlock" in text.lower(), name
                assert "Traceback" not in text and "{'loss'" not in text and "mtime" not in text, name
                if name == "05_familiarity_probes":
                    # 05 reuses 04's models: no training ran there
                    assert "[finetune]" not in text and "[reinforce] training" not in text
                    assert not re.search(r"finetune: step \d+/", text)
                    assert "unlearned: target=" in text and "report.html" in text
                if name == "04_finetuning":
                    assert "stopped cleanly at step 2" in text and "finished" in text
                _shut_down_kernels(lab)
            run_dir = lab["dir"] / "runs" / "sherlock-tiny"
            assert (run_dir / "unlearned").is_dir() and (run_dir / "report.html").is_file()
            # 04 trains the other target kind as a variant (02's whole-corpus scoring and curated map make their own)
            assert "target=soft" in [p.name for p in (run_dir / "variants").iterdir()]

            # the stop button, clicked while monitor.run trains in the cell
            _open(page, lab, "stop_test")
            _run_all(page)
            status = page.locator(".wb-monitor-status")
            status.first.wait_for(timeout=120_000)
            page.wait_for_function(
                "() => /step ([5-9]|\\d\\d+)\\//.test(document.querySelector('.wb-monitor-status').innerText)",
                timeout=120_000)
            t_click = time.time()
            page.click("button.wb-monitor-stop")
            page.wait_for_function("() => /stopp/.test(document.querySelector('.wb-monitor-status').innerText)",
                                   timeout=30_000)
            seen_after = time.time() - t_click
            page.screenshot(path=str(ARTIFACTS / "notebook_stop.png"), full_page=True)
            _wait_until(page, ALL_CELLS_RAN, 300, "the stop test to finish")
            text = _outputs_text(page)
            assert page.locator(ERRORS).count() == 0, page.locator(ERRORS).first.inner_text()
            m = re.search(r"STOP requested=(\d+) stopped=(\d+) total=(\d+) state=(\w+)", text)
            assert m, text[-2000:]
            requested, stopped, total, state = int(m[1]), int(m[2]), int(m[3]), m[4]
            assert state == "stopped" and stopped < total
            assert stopped - requested <= 1, f"stop requested after step {requested}, training stopped at {stopped}"
            assert seen_after < 5, f"the click took {seen_after:.1f} s to reach the kernel"
            r = re.search(r"RESUMED from=(\d+) state=(\w+)", text)
            assert r and r[2] == "finished" and int(r[1]) == stopped  # resumed from the stop's checkpoint
            print(json.dumps({"seconds": seconds, "stop": {"requested": requested, "stopped": stopped,
                                                         "total": total, "click_to_kernel_s": round(seen_after, 2)}}))
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure_notebooks.png"), full_page=True)
            raise
        finally:
            browser.close()
