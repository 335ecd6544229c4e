"""A real browser on the anchor editor: JupyterLab on loopback (one server for the module), 02_anchor_editing run
in headless Chromium on the tiny model.

- an anchor of the Harry Potter pack's map edited in the editor (the preview follows, a bad edit is refused);
- curating a new map from an empty one on the Sherlock Holmes pack (``WORKBENCH_CONFIG``, as
  test_browser_notebooks.py gives it): score, accept five suggestions (one a multi-word phrase), alternatives
  from a fake OpenAI-compatible endpoint on loopback and from the offline proposer, reject a suggestion, save,
  and the notebook's labels cell labels with the saved map; on a 1366 px wide page with the file browser open,
  where the editor must fit;
- curating the Sherlock Holmes pack's own map at 1366x768 with the file browser open: a new entry onto an
  existing key (asked, cancelled, then merged), a rename onto an existing key (asked, replaced, undone, merged),
  a key consolidation covers (shown, edited) and a key that makes another one covered; the saved file holds every
  entry the curator did not delete, and the feedback of each action is in view beside its buttons; the whole
  editor fits the notebook's view, and a clicked occurrence deep in its block is in view in both preview panes,
  marked, its concordance line highlighted and in view, the concordance never scrolling sideways.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it) and the ``playwright`` Python package
(the ``dev`` extra). Playwright's own browser download is never used. Screenshots go to ``tests/artifacts/``:
``anchor_editor.png`` (the edited editor; the whole page beside it, ``anchor_editor_page.png``) and
``anchor_editor_1366.png`` (the page at 1366 px with the file browser open, the curated editor in view),
``anchor_editor_ask_768.png``, ``anchor_editor_saved_768.png``, ``anchor_editor_fit_768.png`` and
``anchor_editor_occurrence_768.png`` (1366x768: the merge / replace / cancel question; the saved map; the whole
editor in view; a clicked occurrence in view in the preview).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from helpers import (
    ALL_CELLS_RAN,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ERRORS,
    ROOT,
    SHERLOCK_TINY,
    jupyterlab,
    open_notebook,
    outputs_text,
    run_all,
    shut_down_kernels,
    wait_until,
)
from test_proposer import FakeChat

pytestmark = pytest.mark.browser

SCREENSHOT = ARTIFACTS / "anchor_editor.png"
NEW_ALTERNATIVE = "Zebediah Quux"
CURATE = "02_curate_sherlock"  # 02_anchor_editing with a first cell that sets its parameters
KEEP = "02_keep_sherlock"  # 02_anchor_editing on the Sherlock Holmes pack's own map
ENDPOINT_NAMES = ["Alderley", "Brampton", "Colwick"]  # what the fake endpoint proposes for every key


def _endpoint_answer(user: str) -> str:
    """The fake endpoint's reply: the requested keys (lines ``- "key": ...``) in a JSON object, as a chat model
    would write it."""
    keys = [json.loads(line[2:].split(": ", 1)[0]) for line in user.splitlines() if line.startswith("- ")]
    return "Here you are:\n```json\n" + json.dumps({k: ENDPOINT_NAMES for k in keys}) + "\n```"


@pytest.fixture(scope="module")
def endpoint():
    server = FakeChat()
    server.answer = _endpoint_answer
    yield server
    server.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, endpoint):
    """JupyterLab over 02_anchor_editing (WORKBENCH_MODEL=tiny, the Harry Potter pack) and its curation copy."""
    root = tmp_path_factory.mktemp("lab")
    config = root / "sherlock_curate.yaml"
    # a reinforced model trained until it has learnt the trained blocks' names (a random tiny model's gains are
    # otherwise noise, and no later word of a name is boosted enough to suggest the name as a phrase)
    reinforce = {
        **SHERLOCK_TINY["reinforce"],
        "epochs": 40.0,
        "learning_rate": 1.0e-2,
        "lora_rank": 16,
        "lora_alpha": 32,
        "save_steps": 1000,
    }
    config.write_text(yaml.safe_dump({**SHERLOCK_TINY, "name": "sherlock-curate", "reinforce": reinforce}))
    curate = nbformat.read(ROOT / "notebooks" / "02_anchor_editing.ipynb", as_version=4)
    params = {
        "WORKBENCH_CONFIG": str(config),
        "WORKBENCH_ANCHORS_START": "empty",
        "WORKBENCH_PROPOSER_URL": endpoint.url,
        "WORKBENCH_PROPOSER_MODEL": "fake",
    }
    curate.cells.insert(
        0,
        nbformat.v4.new_code_cell(f"import os\nos.environ.pop('WORKBENCH_MODEL', None)\nos.environ.update({params!r})"),
    )
    keep_config = root / "sherlock_keep.yaml"
    # blocks of 256 tokens (about 1,000 characters): an occurrence near a block's end is below a preview pane's fold
    keep_config.write_text(
        yaml.safe_dump(
            {**SHERLOCK_TINY, "name": "sherlock-keep", "target": {**SHERLOCK_TINY["target"], "block_size": 256}}
        )
    )
    keep = nbformat.read(ROOT / "notebooks" / "02_anchor_editing.ipynb", as_version=4)
    keep.cells.insert(
        0,
        nbformat.v4.new_code_cell(
            f"import os\nos.environ.pop('WORKBENCH_MODEL', None)\nos.environ.update({{'WORKBENCH_CONFIG': {str(keep_config)!r}}})"
        ),
    )
    notebooks = {
        "02_anchor_editing.ipynb": ROOT / "notebooks" / "02_anchor_editing.ipynb",
        f"{CURATE}.ipynb": curate,
        f"{KEEP}.ipynb": keep,
    }
    with jupyterlab(root, notebooks, {"WORKBENCH_MODEL": "tiny"}) as server:
        server["config"] = config
        server["keep_config"] = keep_config
        yield server


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        try:
            yield page
        finally:
            browser.close()
            shut_down_kernels(lab)


def _run_notebook(page, lab, name: str) -> None:
    open_notebook(page, lab, name)
    run_all(page)
    wait_until(page, ALL_CELLS_RAN, 300, f"all cells of {name} to run")
    errors = page.locator(ERRORS)
    assert errors.count() == 0, errors.first.inner_text()


def test_anchor_editor_in_jupyterlab(lab, page):
    failure = ARTIFACTS / "failure.png"
    failure.unlink(missing_ok=True)
    try:
        _run_notebook(page, lab, "02_anchor_editing")
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
        page.wait_for_function("() => !document.querySelector('button.wb-anchor-apply').disabled", timeout=20_000)
        page.click("button.wb-anchor-apply")
        page.wait_for_function(
            f"() => document.querySelector('.wb-anchor-preview .wb-preview-trans').innerText.includes({NEW_ALTERNATIVE!r})",
            timeout=30_000,
        )
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
        page.screenshot(path=str(failure))  # what the browser showed when it went wrong
        raise
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 10_000


# The editor's box, and every part of it whose content is wider than the part: ipywidgets boxes scroll
# (overflow: auto) and buttons clip their labels, so an editor too wide for the page shows up as a scroll width
# above the client width, not as a box sticking out; a cut label ("alternati…") likewise. (The map table and the
# preview panes scroll by design.)
OVERFLOW = """() => {
    const ed = document.querySelector('.wb-anchor-editor');
    const r = ed.getBoundingClientRect();
    const nb = document.querySelector('.jp-NotebookPanel').getBoundingClientRect();
    const out = [];
    for (const el of [ed, ...ed.querySelectorAll('.jupyter-widget-box, .widget-box, button, .widget-label')]) {
        if (el !== ed && !el.offsetParent) continue;  // not shown
        if (el.scrollWidth > el.clientWidth + 1)
            out.push(`${el.tagName}.${[...el.classList].join('.')}: ${el.scrollWidth} > ${el.clientWidth}`);
    }
    return {left: r.left, right: r.right, width: r.width, panel_right: nb.right, out: out.slice(0, 10)};
}"""


def _suggestions(page) -> list[tuple[str, bool]]:
    """The suggestions shown: (word, is a phrase)."""
    return page.evaluate("""() => [...document.querySelectorAll('.wb-anchor-suggestions .wb-suggestion')].map(s =>
        [s.textContent, s.parentElement.textContent.includes(' phrase')])""")


def _wait_gone(page, word: str) -> None:
    page.wait_for_function(
        f"() => ![...document.querySelectorAll('.wb-anchor-suggestions .wb-suggestion')]"
        f".some(s => s.textContent === {word!r})",
        timeout=30_000,
    )


def _wait_added(page, word: str) -> None:
    """An accepted suggestion's row stays where it was, marked as added."""
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.wb-anchor-suggestions .wb-suggestion.wb-added')]"
        f".some(s => s.textContent === {word!r})",
        timeout=30_000,
    )


def _row_button(page, word: str, cls: str):
    row = page.locator(".wb-anchor-suggestions .widget-hbox").filter(
        has=page.locator(".wb-suggestion", has_text=re.compile(f"^{re.escape(word)}$"))
    )
    return row.locator(f"button.{cls}")


def _pick(page, key: str) -> None:
    """Select ``key`` in the editor's key list and wait until the form shows it."""
    page.select_option(".wb-anchor-picker select", label=key)
    page.wait_for_function(f"() => document.querySelector('.wb-anchor-key input').value === {key!r}", timeout=30_000)


def _wait_status(page, needle: str, timeout: float = 60_000) -> str:
    page.wait_for_function(
        f"() => document.querySelector('.wb-anchor-status').innerText.includes({needle!r})", timeout=timeout
    )
    return page.inner_text(".wb-anchor-status")


def test_curate_from_an_empty_map_in_the_browser(lab, page, endpoint, monkeypatch):
    from workbench.anchors import load_anchor_map
    from workbench.config import config_from_dict, load_config
    from workbench.run import Run

    failure = ARTIFACTS / "failure_curation.png"
    failure.unlink(missing_ok=True)
    try:
        _run_notebook(page, lab, CURATE)
        text = outputs_text(page)
        assert "model 'tiny'" in text and "sherlock" in text.lower(), text[:2000]
        assert "the map is empty" in text  # the save cell on the empty map: nothing to label yet
        editor = page.locator(".wb-anchor-editor")
        editor.scroll_into_view_if_needed()

        # accept five suggestions, one of them a multi-word phrase
        shown = _suggestions(page)
        phrases = [w for w, is_phrase in shown if is_phrase and " " in w]
        words = [w for w, is_phrase in shown if not is_phrase]
        assert phrases and len(words) >= 5, shown
        accepted = [phrases[0]] + words[:4]
        for word in accepted:
            _row_button(page, word, "wb-accept").click()
            _wait_status(page, f"accepted suggestion {word!r}")
            _wait_added(page, word)  # accepted ones stay, marked (the rows render after the status line)
        table = page.inner_text(".wb-anchor-table")
        assert all(w in table for w in accepted) and "(placeholder)" in table

        # reject one more suggestion: it leaves the list for good
        rejected = words[4]
        _row_button(page, rejected, "wb-reject-suggestion").click()
        _wait_status(page, f"rejected suggestion {rejected!r}")
        _wait_gone(page, rejected)

        # the endpoint: one batch for every key still on a placeholder; its proposal used for the phrase
        page.locator("button.wb-propose-lacking").nth(1).click()  # proposer rows: offline, then the endpoint
        _wait_status(page, "endpoint: proposals for 5 of 5")
        assert len(endpoint.requests) == 1 and all(
            json.dumps(w) in endpoint.requests[0]["messages"][-1]["content"] for w in accepted
        )
        proposals = page.locator(".wb-anchor-proposals .widget-hbox").filter(has=page.locator(".wb-proposal"))
        _pick(page, accepted[0])
        endpoint_row = proposals.filter(has_text="endpoint:")
        assert ", ".join(ENDPOINT_NAMES) in endpoint_row.inner_text()
        endpoint_row.locator("button.wb-use-proposal").click()
        _wait_status(page, f"used the proposal for {accepted[0]!r}")

        # the offline proposer (the baseline's likely fillers) for a selected key, used; a random tiny model may
        # find nothing of the key's kind for a key, so the next key is tried
        for key in accepted[1:]:
            _pick(page, key)
            page.locator("button.wb-propose").first.click()
            if "1 of 1" in _wait_status(page, "offline: proposals for", timeout=120_000):
                break
        else:
            raise AssertionError("the offline proposer found alternatives for none of the accepted words")
        offline_row = proposals.filter(has_text="offline:")
        offline_alts = offline_row.locator(".wb-proposal").inner_text().split(": ", 1)[1].split(", ")
        offline_row.locator("button.wb-use-proposal").click()
        _wait_status(page, f"used the proposal for {key!r}")

        # save from the button: placeholders are saved as they are and named in the warning
        page.click("button.wb-anchor-save")
        status = _wait_status(page, "saved 5 anchors")
        assert "placeholder" in status, status

        # 1366 px with the file browser open, the editor full (concordance, proposals, suggestions): it fits beside
        # the file browser and nothing inside is wider than its box
        if not page.locator("#filebrowser").is_visible():
            page.click(".jp-SideBar [data-id='filebrowser']")
        page.wait_for_selector("#filebrowser", state="visible", timeout=10_000)
        fb = page.locator("#filebrowser").bounding_box()
        editor.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "anchor_editor_1366.png"))
        fit = page.evaluate(OVERFLOW)
        assert fit["left"] >= fb["x"] + fb["width"] - 1 and fit["right"] <= min(1366, fit["panel_right"]), fit
        assert not fit["out"], json.dumps(fit)

        # the notebook's last cell: save again and label with the saved map
        page.locator(".jp-NotebookPanel .jp-CodeCell").last.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => e.innerText.includes('added: '))",
            timeout=240_000,
        )
        wait_until(
            page,
            "() => !!document.querySelector(\".jp-Notebook-ExecutionIndicator[data-status='idle']\")",
            120,
            "the labels cell to finish",
        )
        assert page.locator(ERRORS).count() == 0, page.locator(ERRORS).first.inner_text()
    except BaseException:
        page.screenshot(path=str(failure), full_page=True)
        raise

    # the saved map: five keys, the phrase among them, both proposals, the rejection and the placeholders kept
    run_dir = lab["dir"] / "runs" / load_config(lab["config"]).name
    saved = load_anchor_map(run_dir / "anchors.curated.json")
    assert sorted(saved.entries) == sorted(accepted)
    assert saved.entries[accepted[0]] == ENDPOINT_NAMES and saved.entries[key] == offline_alts
    assert saved.review[rejected]["status"] == "rejected"
    assert sorted(k for k, r in saved.review.items() if r.get("placeholder")) == sorted(
        set(accepted) - {accepted[0], key}
    )
    # the labels stage ran on exactly that map (in the run directory the notebook's changed settings went to)
    # (a run directory's config.yaml holds the paths as the notebook gave them: relative to its working folder)
    labelled = []
    monkeypatch.chdir(lab["dir"])
    for record in run_dir.rglob("stages/labels.json"):
        made = config_from_dict(yaml.safe_load((record.parent.parent / "config.yaml").read_text()))
        if made.target.anchors and Path(made.target.anchors).resolve() == (run_dir / "anchors.curated.json").resolve():
            fp = Run(made, record.parent.parent, log=None).fingerprint("labels")
            labelled.append(json.loads(record.read_text())["fingerprint"] == fp)
    assert labelled == [True], labelled


def _in_view(page, selector: str) -> bool:
    """Whether the element is inside the 1366x768 viewport (the feedback of a click is seen without scrolling)."""
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 768 and box["x"] + box["width"] <= 1366


# The editor's box against the notebook's scrolling view (the window under JupyterLab's bars).
IN_VIEW = """() => {
    const ed = document.querySelector('.wb-anchor-editor');
    let view = ed.parentElement;
    while (view && !(/(auto|scroll)/.test(getComputedStyle(view).overflowY) && view.scrollHeight > view.clientHeight))
        view = view.parentElement;
    const r = ed.getBoundingClientRect(), v = view.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, height: r.height, view_top: v.top, view_height: view.clientHeight,
            view: view.className};
}"""

# The marked occurrence in each preview pane: its text, whether it lies inside its pane's box and the window.
FOCUSED = """() => [...document.querySelectorAll('.wb-anchor-preview mark.wb-focused')].map(m => {
    const pane = m.closest('.wb-preview-pane'), r = m.getBoundingClientRect(), p = pane.getBoundingClientRect();
    return {mark: m.textContent, in_pane: r.top >= p.top && r.bottom <= p.bottom, pane_scrolled: pane.scrollTop,
            in_window: r.top >= 0 && r.bottom <= window.innerHeight};
})"""


def _deep_occurrence(config: Path, key: str) -> int:
    """The concordance line (of the first 60 listed) of ``key`` that lies deepest in its block."""
    from workbench.config import load_config
    from workbench.run import Run
    from workbench.widgets import AnchorEditor

    run = Run(load_config(config), config.parent / "probe_occurrences", progress=False, log=None)
    occ = AnchorEditor(run.anchors, texts=run.corpus_blocks).index.occurrences(key)[:60]
    deepest = max(range(len(occ)), key=lambda i: occ[i].start)
    assert occ[deepest].start > 900, "no occurrence below a preview pane's fold"
    return deepest


def _show_editor(page) -> None:
    """Scroll the notebook so the editor's top is at the view's top, as a curator keeps it (JupyterLab scrolls an
    activated cell's input into view after some clicks; the editor fits the view, its code cell above it does not)."""
    page.locator(".wb-anchor-editor").evaluate("e => e.scrollIntoView({block: 'start'})")


def _ask_and_answer(page, answer: str, needle: str) -> str:
    """Press apply, see the question beside the buttons, answer it; returns the status line."""
    _show_editor(page)
    page.wait_for_function("() => !document.querySelector('button.wb-anchor-apply').disabled", timeout=20_000)
    page.click("button.wb-anchor-apply")
    page.wait_for_selector("button.wb-confirm-merge", timeout=30_000)
    status = _wait_status(page, "is already a key")
    assert _in_view(page, ".wb-anchor-status") and _in_view(page, "button.wb-confirm-merge"), (
        "the question is off-screen"
    )
    if answer is None:
        return status
    page.click(f"button.wb-confirm-{answer}")
    return _wait_status(page, needle)


def test_curating_a_pack_map_loses_no_entry(lab, page):
    """The Sherlock Holmes pack's map at 1366x768 with the file browser open: nothing is lost unless deleted."""
    from workbench.anchors import consolidate, key_counts, load_anchor_map
    from workbench.config import load_config
    from workbench.pack import load_pack

    failure = ARTIFACTS / "failure_keep.png"
    failure.unlink(missing_ok=True)
    pack_file = load_pack("sherlock_holmes").anchors_path
    original = load_anchor_map(pack_file, do_consolidate=False).entries
    dropped = dict(consolidate(original)[1])
    assert "Sherlock Holmes" in dropped and {"Lestrade", "Gregson"} <= set(original) and "Thaddeus" not in original
    assert "Thaddeus Sholto" in original and "Thaddeus Sholto" not in dropped
    page.set_viewport_size({"width": 1366, "height": 768})
    try:
        _run_notebook(page, lab, KEEP)
        if not page.locator("#filebrowser").is_visible():
            page.click(".jp-SideBar [data-id='filebrowser']")
        page.wait_for_selector("#filebrowser", state="visible", timeout=10_000)
        # the editor shows every key of the file, and the run's counts (the run's log line, from one function)
        counts = page.inner_text(".wb-anchor-coverage .wb-anchor-counts")
        assert counts.startswith(f"{len(original)} keys ({len(dropped)} covered by other keys"), counts
        assert len(page.locator(".wb-anchor-picker select option").all_inner_texts()) == len(original)
        # the whole editor fits the notebook's view at 1366x768 beside the file browser
        _show_editor(page)
        fit = page.evaluate(IN_VIEW)
        assert fit["height"] <= fit["view_height"] and fit["top"] >= fit["view_top"] - 1 and fit["bottom"] <= 768, fit
        page.screenshot(path=str(ARTIFACTS / "anchor_editor_fit_768.png"))
        # a clicked occurrence deep in its block: in view in both preview panes, marked, the line it came from
        # highlighted; the concordance's lines wrap (no sideways scroll)
        occurrence = _deep_occurrence(lab["keep_config"], "Holmes")
        _pick(page, "Holmes")
        page.locator(".wb-anchor-concordance button.wb-occurrence").nth(occurrence).click()
        page.wait_for_selector(".wb-preview-trans mark.wb-focused", timeout=30_000)
        seen = page.evaluate(FOCUSED)
        assert [s["mark"] for s in seen] == ["Holmes", seen[1]["mark"]] and seen[1]["mark"] != "Holmes", seen
        assert all(s["in_pane"] and s["in_window"] and s["pane_scrolled"] == 0 for s in seen), seen
        clicked = page.locator(".wb-anchor-concordance .widget-hbox").nth(occurrence)
        assert clicked.evaluate("e => e.querySelector('.wb-concordance-line').style.background") != ""
        line, box = clicked.bounding_box(), page.locator(".wb-anchor-concordance").bounding_box()
        assert box["y"] - 1 <= line["y"] and line["y"] + line["height"] <= box["y"] + box["height"] + 1, (line, box)
        conc = page.locator(".wb-anchor-concordance").evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert conc[0] <= conc[1] + 1, conc
        page.screenshot(path=str(ARTIFACTS / "anchor_editor_occurrence_768.png"))

        # a new entry onto an existing key: asked; cancel keeps Gregson, merge adds the new alternative
        page.click("button.wb-anchor-new")
        page.wait_for_function("() => document.querySelector('.wb-anchor-key input').value === ''", timeout=20_000)
        page.fill(".wb-anchor-key input", "Gregson")
        page.fill(".wb-anchor-alts textarea", "Hartley")
        page.locator(".wb-anchor-editor").screenshot(path=str(ARTIFACTS / "anchor_editor_ask.png"))
        _ask_and_answer(page, None, "")
        page.screenshot(path=str(ARTIFACTS / "anchor_editor_ask_768.png"))
        page.click("button.wb-confirm-cancel")
        _wait_status(page, "cancelled: 'Gregson' keeps")
        page.click("button.wb-anchor-apply")
        page.wait_for_selector("button.wb-confirm-merge", timeout=30_000)
        page.click("button.wb-confirm-merge")
        _wait_status(page, "merged into 'Gregson'")
        gregson = original["Gregson"] + ["Hartley"]

        # a rename onto an existing key: asked; replace, undone (both keys back), then merged
        _pick(page, "Lestrade")
        page.fill(".wb-anchor-key input", "Gregson")
        _ask_and_answer(page, "replace", "renamed 'Lestrade' to 'Gregson'")
        page.click("button.wb-anchor-undo")
        _wait_status(page, "undone")
        _pick(page, "Lestrade")
        page.fill(".wb-anchor-key input", "Gregson")
        _ask_and_answer(page, "merge", "merged 'Lestrade' into 'Gregson'")
        gregson += [a for a in original["Lestrade"] if a not in gregson]

        # a key consolidation covers: shown as covered, editable, kept
        page.fill(".wb-anchor-search input", "Holmes")
        page.wait_for_function(
            "() => document.querySelector('.wb-anchor-table').innerText.includes('covered by')", timeout=30_000
        )
        _pick(page, "Sherlock Holmes")
        assert "covered by 'Sherlock' + 'Holmes'" in page.inner_text(".wb-anchor-concordance_title")
        page.fill(".wb-anchor-alts textarea", "\n".join(original["Sherlock Holmes"][:-1] + ["Walter Lynch"]))
        page.wait_for_function("() => !document.querySelector('button.wb-anchor-apply').disabled", timeout=20_000)
        page.click("button.wb-anchor-apply")
        _wait_status(page, "updated 'Sherlock Holmes'")
        # a new key that makes another one covered ('Thaddeus Sholto': 'Thaddeus' and 'Sholto' are keys now)
        page.click("button.wb-anchor-new")
        page.fill(".wb-anchor-key input", "Thaddeus")
        page.fill(".wb-anchor-alts textarea", "Tom")
        page.wait_for_function("() => !document.querySelector('button.wb-anchor-apply').disabled", timeout=20_000)
        page.click("button.wb-anchor-apply")
        _wait_status(page, "added 'Thaddeus'")
        counts = page.inner_text(".wb-anchor-coverage .wb-anchor-counts")
        assert counts.startswith(f"{len(original)} keys ({len(dropped) + 1} covered"), counts

        # save from the button; the status is beside it, in view
        _show_editor(page)
        page.click("button.wb-anchor-save")
        _wait_status(page, f"saved {len(original)} anchors")
        assert _in_view(page, ".wb-anchor-status")
        page.screenshot(path=str(ARTIFACTS / "anchor_editor_saved_768.png"))
        fb = page.locator("#filebrowser").bounding_box()
        fit = page.evaluate(OVERFLOW)
        assert fit["left"] >= fb["x"] + fb["width"] - 1 and fit["right"] <= min(1366, fit["panel_right"]), fit
        assert not fit["out"], json.dumps(fit)
    except BaseException:
        page.screenshot(path=str(failure), full_page=True)
        raise

    run_dir = lab["dir"] / "runs" / load_config(lab["keep_config"]).name
    saved_map = load_anchor_map(run_dir / "anchors.curated.json", do_consolidate=False)
    saved = saved_map.entries
    # every entry the curator did not delete: Lestrade merged into Gregson, Thaddeus added, the rest as in the pack
    assert set(saved) == set(original) - {"Lestrade"} | {"Thaddeus"}
    assert saved["Gregson"] == gregson and saved["Thaddeus"] == ["Tom"]
    assert saved["Sherlock Holmes"] == original["Sherlock Holmes"][:-1] + ["Walter Lynch"]
    assert all(saved[k] == v for k, v in original.items() if k not in ("Lestrade", "Gregson", "Sherlock Holmes"))
    run_map = load_anchor_map(run_dir / "anchors.curated.json")  # as a run reads it: the covered keys dropped
    assert {k for k, _ in run_map.dropped} == set(dropped) | {"Thaddeus Sholto"}
    assert key_counts(run_map, {})["keys"] == len(saved)
