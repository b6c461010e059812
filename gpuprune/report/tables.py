"""The report's tables, as rows of strings, rendered as text (terminal) or HTML."""

import html

SUMMARY_HEAD = ("pre", "post", "connection", "putative", "kept", "kept %", "putative pairs", "connected pairs",
                "vs measured")


def _pct(a, b):
    return f"{100.0 * a / b:.1f}" if b else "-"


def measured_flag(p):
    """``outside`` where the model lies outside a measurement's 95 % interval, ``within`` if inside all."""
    exps = [e for e in p["experiments"] if e["n"] is not None]
    if not exps:
        return ""
    return "OUTSIDE" if p["flag"] else "within"


def summary_rows(data):
    rows = []
    for p in data["pathways"]:
        name = p["name"] if p["has_rule"] else f"{p['name']} (no rule: all removed)"
        rows.append((p["pre"], p["post"], name, f"{p['putative_rows']:,}", f"{p['kept_rows']:,}",
                     _pct(p["kept_rows"], p["putative_rows"]), f"{p['putative_pairs']:,}",
                     f"{p['connected_pairs']:,}", measured_flag(p)))
    return rows


def funnel_rows(p, steps):
    rows, pairs = p["funnel"]["rows"], p["funnel"]["pairs"]
    return [(s, f"{r:,}", _pct(r, rows[0]), f"{q:,}", _pct(q, pairs[0]))
            for s, r, q in zip(steps, rows, pairs, strict=True)]


FUNNEL_HEAD = ("after step", "rows", "% of putative", "pairs", "% of putative pairs")


def experiment_rows(p):
    out = []
    for e in p["experiments"]:
        for i, (s, t) in enumerate(e["bins"]):
            model = e["model"]
            pm, lo, hi = model["probability"][i], model["ci95"][0][i], model["ci95"][1][i]
            elo, ehi = e["ci95"][0][i], e["ci95"][1][i]
            measured = f"{e['P'][i]:.3f}" + (f" [{elo:.3f}, {ehi:.3f}]" if elo is not None else "")
            counts = f"{e['n'][i]}/{e['N'][i]}" if e["n"] is not None else "-"
            got = "-" if pm is None else f"{pm:.3f} [{lo:.3f}, {hi:.3f}] ({model['connected'][i]:,}/" \
                                         f"{model['total'][i]:,})"
            out.append((e["name"], f"{s * 1e6:g}-{t * 1e6:g}", measured, counts, got,
                        "OUTSIDE" if e["outside"][i] else ("within" if elo is not None else "")))
    return out


EXPERIMENT_HEAD = ("measurement", "distance (µm)", "measured P [95% CI]", "n/N", "pruned P [95% CI]", "")


def text_table(head, rows):
    lines = [head, *rows]
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(head))]
    out = []
    for k, r in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def html_table(head, rows, cls="t"):
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in head)
    body = "".join("<tr>" + "".join(f'<td class="{_cell_class(c)}">{html.escape(str(c))}</td>' for c in r) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _cell_class(c):
    return "bad" if c == "OUTSIDE" else ("num" if str(c)[:1].isdigit() else "")
