"""Pictures for the pages, drawn as inline SVG on the server: no script, no CDN, they work offline.

Each function takes plain figures and returns markup ready to drop into a template; labels are
escaped here, so a holder's name can never inject markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from html import escape

import msgspec
from markupsafe import Markup

FONT = "'Noto Sans CJK SC', 'WenQuanYi Zen Hei', system-ui, sans-serif"
SHARES_COLOUR = "#2f6f9f"
WARRANTS_COLOUR = "#e39b3b"
REACHED_COLOUR = "#cfe0ef"
AT_STAGE_COLOUR = "#17324d"


class Holding(msgspec.Struct, kw_only=True, frozen=True):
    """One line of a cap table, in the underlying's unit (shares or yuan of registered capital)."""

    label: str
    shares: Decimal
    warrants: Decimal


class FunnelStep(msgspec.Struct, kw_only=True, frozen=True):
    label_zh: str
    label_en: str
    at_stage: int
    """Enterprises standing on this stage now."""
    reached: int
    """Enterprises on this stage or any later one."""


def percent(part: Decimal, whole: Decimal) -> Decimal:
    """Part of whole in per cent, 2 decimal places, rounded half to even (0 when whole is 0)."""
    if not whole:
        return Decimal("0.00")
    return (part * 100 / whole).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def _text(x: float, y: float, value: str, *, size: int = 13, anchor: str = "start", fill: str = "#1d2733",
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}">{escape(value)}</text>')


def _open(css_class: str, width: int, height: int, title: str,
          legend: Sequence[tuple[int, str, str]]) -> list[str]:
    """The start of a chart: the svg element, its title, and a legend of (x, colour, label) keys."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="{escape(FONT)}">',
        f"<title>{escape(title)}</title>",
        _text(0, 18, title, size=15, weight="bold"),
    ]
    for x, colour, label in legend:
        parts.append(f'<rect x="{x}" y="28" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(x + 18, 39, label, size=12))
    return parts


def _short(label: str, limit: int = 16) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def cap_table_chart(lines: Sequence[Holding], *, title: str = "完全稀释后持股 fully diluted ownership") -> Markup:
    """Horizontal bars, one per holder, largest first: shares and warrants stacked, as % fully diluted."""
    total = sum((h.shares + h.warrants for h in lines), Decimal(0))
    ordered = sorted(lines, key=lambda h: (-(h.shares + h.warrants), h.label))
    label_w, bar_w, row_h, top = 230, 380, 30, 52
    width, height = label_w + bar_w + 90, top + row_h * max(len(ordered), 1) + 12
    parts = _open("cap-table-chart", width, height, title, [
        (0, SHARES_COLOUR, "股份/出资 shares or capital"),
        (230, WARRANTS_COLOUR, "认股权（行权后）warrants, if exercised")])
    if not ordered or not total:
        parts.append(_text(0, top + 18, "暂无股东或认股权 no holders yet", size=13, fill="#5b6b7b"))
    for i, h in enumerate(ordered):
        y = top + i * row_h
        shares_w = float(h.shares / total) * bar_w if total else 0.0
        warrants_w = float(h.warrants / total) * bar_w if total else 0.0
        parts.append(_text(label_w - 8, y + 19, _short(h.label), anchor="end"))
        parts.append(f'<rect x="{label_w}" y="{y + 5}" width="{bar_w}" height="{row_h - 10}" fill="#eef3f8"/>')
        if shares_w:
            parts.append(f'<rect class="shares" x="{label_w}" y="{y + 5}" width="{shares_w:.2f}" '
                         f'height="{row_h - 10}" fill="{SHARES_COLOUR}"/>')
        if warrants_w:
            parts.append(f'<rect class="warrants" x="{label_w + shares_w:.2f}" y="{y + 5}" width="{warrants_w:.2f}" '
                         f'height="{row_h - 10}" fill="{WARRANTS_COLOUR}"/>')
        parts.append(_text(label_w + bar_w + 8, y + 19, f"{percent(h.shares + h.warrants, total)}%"))
    parts.append("</svg>")
    return Markup("".join(parts))


def funnel_chart(steps: Sequence[FunnelStep], *, title: str = "分层漏斗 pipeline funnel") -> Markup:
    """A funnel: for each stage, a pale bar for those who reached it (or went further), a dark bar for
    those standing on it now, both centred and scaled to the widest stage."""
    widest = max((s.reached for s in steps), default=0) or 1
    label_w, bar_w, row_h, top = 230, 360, 34, 52
    centre = label_w + bar_w / 2
    width, height = label_w + bar_w + 170, top + row_h * max(len(steps), 1) + 12
    parts = _open("funnel-chart", width, height, title, [
        (0, REACHED_COLOUR, "已达此层或更高 reached this stage or beyond"),
        (330, AT_STAGE_COLOUR, "目前在此层 on this stage now")])
    for i, s in enumerate(steps):
        y = top + i * row_h
        reached_w = bar_w * s.reached / widest
        at_w = bar_w * s.at_stage / widest
        parts.append(_text(label_w - 8, y + 16, s.label_zh, anchor="end"))
        parts.append(_text(label_w - 8, y + 29, s.label_en, anchor="end", size=10, fill="#5b6b7b"))
        if reached_w:
            parts.append(f'<rect class="reached" x="{centre - reached_w / 2:.2f}" y="{y + 4}" width="{reached_w:.2f}" '
                         f'height="{row_h - 8}" rx="3" fill="{REACHED_COLOUR}"/>')
        if at_w:
            parts.append(f'<rect class="at-stage" x="{centre - at_w / 2:.2f}" y="{y + 9}" width="{at_w:.2f}" '
                         f'height="{row_h - 18}" rx="2" fill="{AT_STAGE_COLOUR}"/>')
        parts.append(_text(label_w + bar_w + 10, y + 22, f"{s.at_stage} 家 now · {s.reached} 累计 reached"))
    parts.append("</svg>")
    return Markup("".join(parts))
