"""``report.html``: one self-contained static page (pictures embedded as base64, no JavaScript, no network) with
the leaderboard, the pictures, every cell's status, the protocol and the library versions."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..atomic import atomic_write
from . import published
from .leaderboard import _short

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.best { font-weight: bold; } td.failed { color: #b00; } pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
img { max-width: 100%; }
"""


def _table(board: dict) -> str:
    ranking = board["ranking"]
    datasets = ranking["datasets"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["encoder", *map(_short, datasets), "mean", "mean rank"])
    rows = []
    for row in ranking["encoders"]:
        cells = [f"<td><code>{html.escape(row['encoder'])}</code></td>"]
        for dataset in datasets:
            entry = ranking["table"][row["encoder"]][dataset]
            if "mean" not in entry:
                cells.append(f'<td class="failed">{html.escape(entry["status"])}</td>')
                continue
            ci = entry["ci95"]
            interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else ""
            mark = " ≈" if entry["overlaps_best"] and not entry["best"] else ""
            css = ' class="best"' if entry["best"] else ""
            cells.append(f"<td{css}>{entry['mean']:.3f}{mark}<br><small>{interval}</small></td>")
        cells.append(f"<td>{row['mean']:.3f}</td>" if row["mean"] is not None else "<td>–</td>")
        cells.append(f"<td>{row['mean_rank']:.2f}</td>" if row["mean_rank"] is not None else "<td>–</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _published(board: dict) -> str:
    section = board.get("published")
    if not section:
        return ""
    if not section["rows"]:
        return (
            f"<p>The published figures ({html.escape(section['title'])}) are for <code>"
            f"{html.escape(section['encoder'])}</code>, which this run does not include.</p>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in published.HEADER)
    rows = []
    for row in section["rows"]:
        dataset, *rest = (html.escape(cell) for cell in published.row_cells(row))
        rows.append(f"<tr><td><code>{dataset}</code></td>" + "".join(f"<td>{c}</td>" for c in rest) + "</tr>")
    source = section["source"]
    return (
        f"<h2>Paper vs ours: {html.escape(section['title'])}</h2>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
        f"<p>{html.escape(section['citation'])} Figures from {html.escape(source['repository'])}@"
        f"{html.escape(source['commit'][:7])} {html.escape(source['files'])}; {html.escape(source['how'])}.</p>"
    )


def _picture(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def render(board: dict, pictures: list[Path], note: str | None = None) -> str:
    """The page's HTML."""
    suite = board["suite"]
    ranking = board["ranking"]
    cells = "".join(
        f"<tr><td><code>{html.escape(c['encoder'])}</code></td><td><code>{html.escape(c['dataset'])}</code></td>"
        f"<td>{c['status']}</td><td>{html.escape(c['error'] or c['results'] or '')}</td></tr>"
        for c in board["cells"]
    )
    versions = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in board["versions"].items()
    )
    expanded = {k: suite[k] for k in ("encoders", "datasets", "hash", "source")}
    body = [
        f"<h1>{html.escape(suite['name'])}</h1>",
        f"<p>{html.escape(suite['description'])}</p>",
        f"<h2>{html.escape(ranking['probe'])} {html.escape(ranking['metric'])} (test split)</h2>",
        _table(board),
        "<p>Bold: best per dataset; ≈: its 95% bootstrap interval over test images overlaps the best one's. "
        "Mean rank: ranked per dataset, ties averaged.</p>",
        *(_picture(p, p.stem) for p in pictures),
        f"<p><em>{html.escape(note)}</em></p>" if note else "",
        _published(board),
        "<h2>Protocol</h2>",
        f"<p>{html.escape(suite['protocol'])}</p>",
        f"<pre>{html.escape(json.dumps(expanded, indent=2))}</pre>",
        "<h2>Cells</h2>",
        f"<table><tr><th>encoder</th><th>dataset</th><th>status</th><th>error / results</th></tr>{cells}</table>",
        "<h2>Versions</h2>",
        f"<table>{versions}</table>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(suite['name'])} leaderboard</title><style>{_STYLE}</style></head>"
        "<body>\n" + "\n".join(b for b in body if b) + "\n</body></html>\n"
    )


def write(board: dict, out: Path, pictures: list[Path], note: str | None = None) -> Path:
    text = render(board, pictures, note)
    return atomic_write(out / "report.html", lambda tmp: tmp.write_text(text, encoding="utf-8"))
