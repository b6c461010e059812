"""``index.html``: one self-contained page (inline CSS, figures as base64 PNG; no external resource)."""

import base64
import html

from gpuprune.report import tables

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}td.num{text-align:right}td.bad{color:#b00;font-weight:bold}
img{max-width:100%;border:1px solid #eee}h2{border-top:1px solid #ccc;padding-top:1em}.note{color:#666}"""


def _img(png, alt):
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def render(data, figures=None, hint=None):
    """The page as a string; ``figures`` maps "funnel" and pathway indexes to PNG bytes."""
    figures = figures or {}
    opt = data["options"]
    dist = "3D soma distance" if opt["distance"] == "3d" else f"2D soma distance, |dz| ≤ {opt['slab'] * 1e6:g} µm"
    parts = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>gpuprune report</title>"
             f"<style>{STYLE}</style></head><body>",
             "<h1>gpuprune report</h1>",
             f"<p>network <code>{html.escape(data['network'])}</code>, pruned file "
             f"<code>{html.escape(data['pruned_file'])}</code> ({html.escape(data['rng'])} randomness, seed "
             f"{data['seed']}). P(connect): all pre × post pairs, {dist}, "
             f"{opt['bin_width'] * 1e6:g} µm bins"
             + (f", postsynaptic neurons at least {opt['centre_margin'] * 1e6:g} µm inside the network"
                if opt["centre_margin"] else "") + "; intervals: Wilson 95%.</p>"]
    if hint:
        parts.append(f'<p class="note">{html.escape(hint)}</p>')
    parts.append("<h2>Summary</h2>" + tables.html_table(tables.SUMMARY_HEAD, tables.summary_rows(data)))
    if "funnel" in figures:
        parts.append(_img(figures["funnel"], "funnel of all pathways"))
    for i, p in enumerate(data["pathways"]):
        parts.append(f'<h2 id="p{i}">{html.escape(p["pre"])} → {html.escape(p["post"])} '
                     f'({html.escape(p["name"])})</h2>')
        if i in figures:
            parts.append(_img(figures[i], f"pathway {i}"))
        parts.append(tables.html_table(tables.FUNNEL_HEAD, tables.funnel_rows(p, data["steps"])))
        if p["experiments"]:
            parts.append(tables.html_table(tables.EXPERIMENT_HEAD, tables.experiment_rows(p)))
            parts.append("<p class=\"note\">" + "<br>".join(html.escape(f"{e['name']}: {e['reference']}")
                                                          for e in p["experiments"]) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
