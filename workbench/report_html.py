"""A run's report as one self-contained HTML file (no scripts, no external files): settings, stage times,
labels, the before/after table with a bar chart, per-probe results, and the run's variants.

::

    from workbench.report_html import export_report
    export_report("runs/demo")               # writes runs/demo/report.html
    nb.export_report()                       # the same from a notebook (runs the report stage first if needed)
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path

import pandas as pd
import yaml

from workbench.errors import WorkbenchError
from workbench.io import atomic_write_text, read_json
from workbench.rundir import RunDir

__all__ = ["export_report", "bars_svg", "ground_truth_html", "report_table_html"]

_COLORS = {"baseline": "#4c78a8", "unlearned": "#e45756", "generic": "#54a24b"}
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border-bottom:1px solid #ddd;padding:3px 10px;
text-align:left}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}pre{background:#f6f8fa;padding:8px;font-size:12px;overflow:auto}
.muted{color:#666;font-size:12px}"""


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _num(v) -> str:
    from workbench.widgets._common import fmt_number

    if v is None or (isinstance(v, float) and v != v):
        return ""
    return fmt_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _table(df: pd.DataFrame, max_rows: int = 500) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    rows = []
    for _, r in df.head(max_rows).iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f'<td class="num">{_esc(_num(v))}</td>' if num else f"<td>{_esc('' if v is None else v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="muted">… {len(df) - max_rows} more rows</p>' if len(df) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def bars_svg(groups: list[str], series: dict[str, list[float | None]], title: str, width: int = 760) -> str:
    """A grouped bar chart as inline SVG: one group per label, one bar per series (None: no bar)."""
    n_series = max(1, len(series))
    row_h, bar_h, left = 18 * n_series + 14, 16, 330
    height = 40 + row_h * len(groups) + 24
    vmax = max([v for vals in series.values() for v in vals if v is not None] + [1e-9])
    scale = (width - left - 70) / vmax
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12" '
        f'font-family="system-ui,sans-serif"><text x="0" y="16" font-weight="600">{_esc(title)}</text>'
    ]
    for gi, g in enumerate(groups):
        y0 = 32 + gi * row_h
        out.append(f'<text x="{left - 8}" y="{y0 + row_h / 2}" text-anchor="end">{_esc(g[:52])}</text>')
        for si, (name, vals) in enumerate(series.items()):
            v = vals[gi]
            if v is None:
                continue
            y = y0 + si * 18
            color = _COLORS.get(name, "#888")
            out.append(
                f'<rect x="{left}" y="{y}" width="{max(1.0, v * scale):.1f}" height="{bar_h}" fill="{color}">'
                f"<title>{_esc(name)}: {_num(v)}</title></rect>"
                f'<text x="{left + v * scale + 4:.1f}" y="{y + 12}">{_esc(_num(v))}</text>'
            )
    lx = left
    for name in series:
        out.append(
            f'<rect x="{lx}" y="{height - 16}" width="12" height="12" fill="{_COLORS.get(name, "#888")}"/>'
            f'<text x="{lx + 16}" y="{height - 6}">{_esc(name)}</text>'
        )
        lx += 20 + 8 * len(name)
    out.append("</svg>")
    return "".join(out)


def _settings(cfg: dict) -> pd.DataFrame:
    t, f, r = cfg.get("target", {}), cfg.get("finetune", {}), cfg.get("reinforce", {})
    rows = [
        ("model", cfg.get("model")),
        ("pack", t.get("pack")),
        ("corpus", t.get("corpus")),
        ("anchors", t.get("anchors") and Path(t["anchors"]).name),
        ("blocks", f"{t.get('max_blocks') or 'all'} of {t.get('block_size')} tokens"),
        ("reinforce", f"{r.get('epochs')} epoch(s), lr {r.get('learning_rate')}, LoRA r={r.get('lora_rank')}"),
        (
            "finetune",
            f"{f.get('target')} targets, α={f.get('alpha')}, T={f.get('temperature')}, retain weight "
            f"{f.get('retain_weight')}, lr {f.get('learning_rate')}, {f.get('epochs')} epoch(s)",
        ),
    ]
    return pd.DataFrame([(k, v) for k, v in rows if v], columns=["setting", "value"])


def report_title(report: dict) -> str:
    """'Before and after: heldout probes (117 target, 83 collateral, 73 general)', from a report's own config."""
    split = ((report.get("config") or {}).get("report") or {}).get("split") or "all"
    counts = ", ".join(f"{r['n']} {s}" for s, r in (report.get("probes") or {}).items())
    return f"Before and after: {split} probes" + (f" ({counts})" if counts else "")


def report_table_html(report: dict, level: int = 2) -> str:
    """The run's before/after table (:func:`~workbench.report.report_table`) under a title naming the split and
    the number of probes, as report.html shows it and the notebooks open and close with it; styled inline, so a
    notebook cell shows it as the report does."""
    from workbench.report import report_table

    table = report_table(report) if report else pd.DataFrame()
    if table.empty:
        return "<p>no before/after table in this report (report.enabled is off, or the pack has no probes)</p>"
    ppl = table["measure"].str.startswith("perplexity")
    for c in ("baseline", "unlearned", "generic"):  # probabilities to 4 decimals, perplexity to 2, as the README
        table[c] = [None if pd.isna(v) else f"{v:.2f}" if is_ppl else f"{v:.4f}" for v, is_ppl in zip(table[c], ppl)]
    table["n"] = [None if v is None or pd.isna(v) else str(int(v)) for v in table["n"]]  # counts, not 117.000
    style = "<style>.wb-report td.num{text-align:right;font-variant-numeric:tabular-nums}</style>"
    return (
        f'<div class="wb-report">{style}<h{level}>{_esc(report_title(report))}</h{level}>'
        "<p class='muted'>mean probability of the correct next token, with the 95% paired-bootstrap interval of the "
        "change; generic: the baseline on the prompts with anchored terms replaced (the reference the labels "
        "imitate)</p>" + _table(table) + "</div>"
    )


def ground_truth_html(report: dict, level: int = 2) -> str:
    """An implanted run's field measures (:func:`~workbench.report.ground_truth_table`: the target model, the
    unlearned model and the reference that never saw the target) and how well the implant took; empty when the
    report has no reference."""
    from workbench.report import ground_truth_table, implant_table

    table = ground_truth_table(report)
    if table.empty:
        return ""
    h = f"h{level}"
    html = (
        f"<{h}>Against a reference that never saw the target</{h}><p class='muted'>target: the baseline taught the "
        "target (the model unlearned); reference: the untouched baseline; never saw it: what a model that never "
        "learned the target shows (docs/evaluation.md)</p>" + _table(table)
    )
    implant = implant_table(report)
    if not implant.empty:
        html += f"<{h}>How well the implant took</{h}>" + _table(implant)
    return html


def _run_section(run_dir: Path, level: int = 2) -> str:
    from workbench.report import report_table
    from workbench.run import STAGES

    parts, paths = [], RunDir(run_dir)
    cfg = yaml.safe_load(paths.config.read_text(encoding="utf-8")) if paths.config.is_file() else {}
    h = f"h{level}"
    parts.append(f"<{h}>Settings</{h}>" + _table(_settings(cfg)))
    stages = []
    for s in STAGES:
        p = paths.stage_record(s)
        if p.is_file():
            rec = read_json(p)
            stages.append({"stage": s, "seconds": rec.get("seconds"), "finished": rec.get("finished_at")})
    if stages:
        parts.append(f"<{h}>Stages</{h}>" + _table(pd.DataFrame(stages)))
    labels = read_json(paths.stage_record("labels")).get("summary") if paths.stage_record("labels").is_file() else None
    if labels:
        parts.append(
            f"<{h}>Generic labels</{h}><p class='muted'>changed_share: the share of labelled positions whose "
            f"label differs from the original next token</p>" + _table(pd.DataFrame(labels))
        )
    report_path = paths.report_json
    report = read_json(report_path) if report_path.is_file() else {}
    table = report_table(report) if report else pd.DataFrame()
    if not table.empty:
        probs = table[~table["measure"].str.startswith(("perplexity", "trivia"))]
        series = {
            k: [None if pd.isna(v) else float(v) for v in probs[k]]
            for k in ("baseline", "unlearned", "generic")
            if k in probs and probs[k].notna().any()
        }
        parts.append(
            report_table_html(report, level)
            + bars_svg(
                [m.strip() for m in probs["measure"]],
                series,
                "P(correct next token): baseline, unlearned, generic reference",
            )
        )
        parts.append(ground_truth_html(report, level))
        per_probe = paths.report_probes
        if per_probe.is_file():
            df = pd.read_csv(per_probe)
            parts.append(f"<details><summary>every probe ({len(df)} rows)</summary>{_table(df, 2000)}</details>")
    else:
        parts.append(
            f"<p>No before/after report in {_esc(run_dir)} yet: run the report stage "
            "(<code>workbench report CONFIG</code>, or <code>nb.export_report()</code> in a notebook).</p>"
        )
    if cfg:
        parts.append(
            f"<details><summary>full config</summary><pre>{_esc(yaml.safe_dump(cfg, sort_keys=False))}</pre></details>"
        )
    return "".join(parts)


def export_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, title: str | None = None) -> Path:
    """Write ``<run_dir>/report.html`` (or ``out``): the run and each of its variants. Returns the path."""
    run_dir = Path(run_dir)
    paths = RunDir(run_dir)
    if not paths.config.is_file():
        raise WorkbenchError(f"{run_dir} is not a run directory (no config.yaml)")
    out = Path(out) if out else paths.report_html
    name = title or run_dir.name
    body = [
        f"<h1>Unlearning run: {_esc(name)}</h1>",
        f"<p class='muted'>{_esc(run_dir.resolve())} · exported {time.strftime('%Y-%m-%d %H:%M')}</p>",
        _run_section(run_dir),
    ]
    vdir = paths.variants
    for v in sorted(vdir.iterdir()) if vdir.is_dir() else []:
        if RunDir(v).config.is_file():
            body.append(f"<h2>Variant {_esc(v.name)}</h2>" + _run_section(v, level=3))
    doc = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(name)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    atomic_write_text(out, doc)
    return out
