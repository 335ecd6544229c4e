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
import time

import nbformat
import pytest
import yaml
from helpers import (
    ALL_CELLS_RAN,
    ARTIFACTS,
    BROWSER_NOTEBOOKS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ERRORS,
    MARKERS,
    ROOT,
    SHERLOCK_TINY,
    jupyterlab,
    open_notebook,
    outputs_text,
    run_all,
    shut_down_kernels,
    wait_until,
)

pytestmark = pytest.mark.browser

NOTEBOOKS = BROWSER_NOTEBOOKS  # nbclient skips these where this test runs: it checks their markers too
# a notebook that trains long enough to click stop in the browser, the way 00 and 01 train (monitor.run)
STOP_CELLS = [
    "import copy\nfrom IPython.display import display\nfrom workbench import notebook\n"
    "from workbench.widgets import TrainingMonitor\n"
    "nb = notebook.setup('stop_test')\ncfg = copy.deepcopy(nb.cfg)\n"
    "cfg.reinforce.epochs = 40.0\ncfg.reinforce.save_steps = 10_000\nrun = nb.run(cfg=cfg, variant='stop-test')\n"
    "import time\nfrom transformers import TrainerCallback\n"
    "class Slow(TrainerCallback):  # tiny-model steps take milliseconds; an embedded-model step takes seconds\n"
    "    def on_step_end(self, *a, **k): time.sleep(0.1)\n"
    "run.callbacks.append(Slow())",
    "monitor = TrainingMonitor('stop test')\ndisplay(monitor)\nmonitor.run(run.reinforce)\n"
    "print(f'STOP requested={monitor.stop_requested_step} stopped={monitor._controller.stopped_at} "
    "total={monitor.max_steps} state={monitor.state}')",
    # the resumed training runs at full speed: the slowing callback only had to leave time for the click
    "run.callbacks[:] = [c for c in run.callbacks if not isinstance(c, Slow)]\n"
    "monitor.run(run.reinforce)\nprint(f'RESUMED from={monitor._phase_step0} state={monitor.state}')",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab for the module over the six notebooks and the stop test, WORKBENCH_CONFIG on Sherlock."""
    root = tmp_path_factory.mktemp("lab")
    stop = nbformat.v4.new_notebook()
    stop.cells = [nbformat.v4.new_code_cell(c) for c in STOP_CELLS]
    stop.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    config = root / "sherlock_tiny.yaml"
    config.write_text(yaml.safe_dump(SHERLOCK_TINY))
    notebooks = {f"{name}.ipynb": ROOT / "notebooks" / f"{name}.ipynb" for name in NOTEBOOKS}
    with jupyterlab(root, {**notebooks, "stop_test.ipynb": stop}, {"WORKBENCH_CONFIG": str(config)}) as server:
        yield server


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
                open_notebook(page, lab, name)
                run_all(page)
                wait_until(page, ALL_CELLS_RAN, 400, f"all cells of {name} to run")
                seconds[name] = time.time() - t0
                errors = page.locator(ERRORS)
                text = outputs_text(page)
                page.screenshot(path=str(ARTIFACTS / f"notebook_{name}.png"), full_page=True)
                for i, sel in enumerate(
                    (".wb-training-monitor", ".js-plotly-plot", ".wb-probe-comparer", ".wb-monitor-summary")
                ):
                    found = page.locator(f"{sel} >> visible=true")
                    if found.count():  # the parts worth looking at, one screenshot each
                        found.last.scroll_into_view_if_needed(timeout=5000)
                        page.screenshot(path=str(ARTIFACTS / f"notebook_{name}_{i}.png"))
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                assert "model 'tiny'" in text and "sherlock" in text.lower(), name
                assert "Traceback" not in text and "{'loss'" not in text and "mtime" not in text, name
                # what nbclient checks on the tiny config (this config has a report stage, so no "report.enabled"
                # notice); innerText applies the page's CSS, upper-casing some headings, hence no case
                # the Sherlock pack's collateral probes carry no dev/heldout split, so 05's dev table has none
                config_bound = {"report.enabled", "collateral"}
                missing = [m for m in MARKERS[name] if m not in config_bound and m.lower() not in text.lower()]
                assert not missing, f"{name}: expected {missing} in the outputs"
                if name == "05_familiarity_probes":
                    # 05 reuses 04's models: no training ran there
                    assert "[finetune]" not in text and "[reinforce] training" not in text
                    assert not re.search(r"finetune: step \d+/", text)
                    assert "unlearned: target=" in text and "report.html" in text
                if name == "04_finetuning":
                    assert "stopped cleanly at step 2" in text and "finished" in text
                shut_down_kernels(lab)
            run_dir = lab["dir"] / "runs" / "sherlock-tiny"
            assert (run_dir / "unlearned").is_dir() and (run_dir / "report.html").is_file()
            # 04 trains the other target kind as a variant (02's whole-corpus scoring and curated map make their own)
            assert "target=soft" in [p.name for p in (run_dir / "variants").iterdir()]

            # the stop button, clicked while monitor.run trains in the cell
            open_notebook(page, lab, "stop_test")
            run_all(page)
            status = page.locator(".wb-monitor-status")
            status.first.wait_for(timeout=120_000)
            page.wait_for_function(
                "() => /step ([5-9]|\\d\\d+)\\//.test(document.querySelector('.wb-monitor-status').innerText)",
                timeout=120_000,
            )
            t_click = time.time()
            page.click("button.wb-monitor-stop")
            page.wait_for_function(
                "() => /stopp/.test(document.querySelector('.wb-monitor-status').innerText)", timeout=30_000
            )
            seen_after = time.time() - t_click
            page.screenshot(path=str(ARTIFACTS / "notebook_stop.png"), full_page=True)
            wait_until(page, ALL_CELLS_RAN, 300, "the stop test to finish")
            text = outputs_text(page)
            assert page.locator(ERRORS).count() == 0, page.locator(ERRORS).first.inner_text()
            m = re.search(r"STOP requested=(\d+) stopped=(\d+) total=(\d+) state=(\w+)", text)
            assert m, text[-2000:]
            requested, stopped, total, state = int(m[1]), int(m[2]), int(m[3]), m[4]
            assert state == "stopped" and stopped < total
            assert stopped - requested <= 1, f"stop requested after step {requested}, training stopped at {stopped}"
            assert seen_after < 5, f"the click took {seen_after:.1f} s to reach the kernel"
            r = re.search(r"RESUMED from=(\d+) state=(\w+)", text)
            assert r and r[2] == "finished" and int(r[1]) == stopped  # resumed from the stop's checkpoint
            print(
                json.dumps(
                    {
                        "seconds": seconds,
                        "stop": {
                            "requested": requested,
                            "stopped": stopped,
                            "total": total,
                            "click_to_kernel_s": round(seen_after, 2),
                        },
                    }
                )
            )
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure_notebooks.png"), full_page=True)
            raise
        finally:
            browser.close()
