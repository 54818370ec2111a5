"""A shopper's page as one self-contained HTML file (`peakrec query ... --html FILE`): rank, title,
brand, price, score (with a bar), and the reason per item, under the flags of the answer (bundle,
eligible count, cold shopper, degraded). No scripts, no external resources."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, "Noto Sans CJK SC", "Noto Sans", sans-serif; margin: 2rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
.flags span { display: inline-block; margin: .2rem .4rem .8rem 0; padding: .1rem .5rem; border-radius: .8rem;
  background: #eef1f5; font-size: .85rem; }
.flags .warn { background: #fde2e1; color: #9b1c1c; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e5e8; vertical-align: top; }
th { background: #f6f7f9; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar { display: inline-block; height: .55rem; background: #4c72b0; border-radius: .2rem; margin-left: .4rem; }
.item { color: #6b7280; font-family: ui-monospace, monospace; font-size: .8rem; }
.reason { color: #4b5563; }
"""


def page_html(page: Any, heading: str) -> str:
    """The page (a ``peakrec.Client`` Page) as an HTML document titled ``heading``."""
    flags = [f"bundle {page.bundle_version}", f"eligible {page.eligible_count:,}"]
    warn = []
    if page.cold:
        flags.append("cold shopper")
    if page.degraded:
        warn.append("DEGRADED")
    top = max((abs(item.score) for item in page.items), default=0.0) or 1.0
    rows = []
    for rank, item in enumerate(page.items, 1):
        price = "" if item.price is None else f"{item.price:,.2f}"
        width = max(0.0, item.score) / top * 60
        rows.append(
            "<tr>"
            f'<td class="num">{rank}</td>'
            f'<td>{escape(item.title)}<div class="item">{escape(item.item_id)}</div></td>'
            f"<td>{escape(item.brand)}</td>"
            f'<td class="num">{price}</td>'
            f'<td class="num">{item.score:.4f}<span class="bar" style="width:{width:.0f}px"></span></td>'
            f'<td class="reason">{escape(item.reason)}</td>'
            "</tr>"
        )
    badges = "".join(f"<span>{escape(f)}</span>" for f in flags)
    badges += "".join(f'<span class="warn">{escape(w)}</span>' for w in warn)
    body = "\n".join(rows) or '<tr><td colspan="6">no items</td></tr>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(heading)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{escape(heading)}</h1>
<div class="flags">{badges}</div>
<table>
<thead><tr><th class="num">#</th><th>title</th><th>brand</th><th class="num">price</th>
<th class="num">score</th><th>reason</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body>
</html>
"""
