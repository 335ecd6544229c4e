"""A real browser: JupyterLab on loopback, 02_anchor_editing run in headless Chromium, an anchor edited in the editor.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it) and the ``playwright`` Python package
(the ``dev`` extra). Playwright's own browser download is never used. The screenshot of the edited editor is saved
to ``tests/artifacts/anchor_editor.png`` (the whole page beside it, ``anchor_editor_page.png``).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOT = ARTIFACTS / "anchor_editor.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
NEW_ALTERNATIVE = "Zebediah Quux"


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


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab on 127.0.0.1 over a temporary copy of the notebooks, with WORKBENCH_MODEL=tiny."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package (.ci/run does)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright Python package is missing: `pip install -e .[dev]`")
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    shutil.copy(ROOT / "notebooks" / "02_anchor_editing.ipynb", nbdir)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "WORKBENCH_MODEL": "tiny", "OMP_NUM_THREADS": "1",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter_config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab_settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab_workspaces")}
    env.pop("WORKBENCH_RUNS", None)
    # no "official Jupyter news?" toast over the page
    notif = tmp_path / "lab_settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}", "--ServerApp.port_retries=0",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
            + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            cwd=nbdir, env=env, stdout=fh, stderr=subprocess.STDOUT,
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


# true once every code cell shows an execution count, or as soon as a cell shows an error (Run All stops there)
ALL_CELLS_RAN = """() => {
    if (document.querySelector(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")) return true;
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
    return prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
}"""


KERNEL_IDLE = "() => !!document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\")"


def _wait_until(page, js: str, timeout: float, what: str) -> None:
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


def test_anchor_editor_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)
    url = f"{jupyterlab['url']}/lab/tree/02_anchor_editing.ipynb?token={jupyterlab['token']}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _wait_until(page, KERNEL_IDLE, 120, "the kernel to start")
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            _wait_until(page, ALL_CELLS_RAN, 240, "all cells to run")
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
            assert errors.count() == 0, errors.first.inner_text()

            editor = page.locator(".wb-anchor-editor")
            editor.wait_for(timeout=60_000)
            editor.scroll_into_view_if_needed()
            key = page.input_value(".wb-anchor-key input")
            assert key, "the editor should start with a key of the preview block selected"
            preview = page.locator(".wb-anchor-preview .wb-preview-trans")
            before = preview.inner_text()
            assert NEW_ALTERNATIVE not in before

            # as many alternatives as the key has: a key of a family keeps its index-aligned length
            n_alts = len([line for line in page.input_value(".wb-anchor-alts textarea").splitlines() if line.strip()])
            new_alts = "\n".join(f"{NEW_ALTERNATIVE} {chr(65 + i)}" for i in range(max(1, n_alts)))
            page.fill(".wb-anchor-alts textarea", new_alts)
            page.locator("button.wb-anchor-apply").wait_for(state="visible")
            page.wait_for_function("() => !document.querySelector('button.wb-anchor-apply').disabled", timeout=20_000)
            page.click("button.wb-anchor-apply")
            page.wait_for_function(
                f"() => document.querySelector('.wb-anchor-preview .wb-preview-trans').innerText.includes({NEW_ALTERNATIVE!r})",
                timeout=30_000)
            after = preview.inner_text()
            assert after != before and NEW_ALTERNATIVE in after
            assert f"updated {key!r}" in page.inner_text(".wb-anchor-status")
            assert NEW_ALTERNATIVE in page.inner_text(".wb-anchor-table")

            # an invalid edit shows its error inline and disables apply
            page.fill(".wb-anchor-alts textarea", "")
            page.wait_for_selector(".wb-anchor-validation .wb-error", timeout=20_000)
            assert page.locator("button.wb-anchor-apply").is_disabled()
            page.fill(".wb-anchor-alts textarea", new_alts)
            page.wait_for_function("() => !document.querySelector('.wb-anchor-validation .wb-error')", timeout=20_000)

            editor.scroll_into_view_if_needed()
            editor.screenshot(path=str(SCREENSHOT))
            page.screenshot(path=str(ARTIFACTS / "anchor_editor_page.png"))
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))  # what the browser showed when it went wrong
            raise
        finally:
            browser.close()
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 10_000
    print(f"screenshot: {SCREENSHOT}")
