"""Charts as inline SVG, drawn by hand: no script, no external resource, prints as vectors.

Colours are chosen to stay apart in greyscale print too, and every bar carries its figure as
text, so a chart never relies on colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from duban.notifiers.reports.model import CategoryTotal, IndicatorRow

COLOURS = {"red": "#c0392b", "yellow": "#d4a017", "green": "#2e8b57", None: "#8c8c8c"}
PROGRESS_COLOUR = "#1a1a1a"
MAX_INDICATOR_BARS = 40
WIDTH = 680


def _num(value: float, digits: int = 1) -> str:
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def indicator_chart(rows: Sequence[IndicatorRow]) -> tuple[Markup, str]:
    """Completion of each jurisdiction indicator's yearly target against the 序时进度 line.

    Returns the SVG and a note ("" or which rows were left out when there are too many to read).
    """
    bars = [r for r in rows if not r.sub and r.completion is not None and r.basis == "年度目标"]
    if not bars:
        bars = [r for r in rows if not r.sub and r.completion is not None]
    if not bars:
        return Markup(""), ""
    note = ""
    if len(bars) > MAX_INDICATOR_BARS:
        bars = sorted(bars, key=lambda r: (r.gap if r.gap is not None else 0.0))[:MAX_INDICATOR_BARS]
        note = f"指标较多，图中仅列示完成进度落后序时进度最多的{MAX_INDICATOR_BARS}项，完整数据见下表。"
    label_w, left, right = 210, 218, WIDTH - 64
    row_h, top = 24, 34
    scale_max = max(100.0, min(200.0, math.ceil(max(r.completion or 0.0 for r in bars) / 25.0) * 25.0))
    height = top + row_h * len(bars) + 44

    def x(percent: float) -> float:
        return left + (right - left) * max(0.0, min(percent, scale_max)) / scale_max

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
             f'width="{WIDTH}" height="{height}" role="img" aria-label="主要指标完成进度与序时进度">']
    tick = 0.0
    while tick <= scale_max + 0.01:
        parts.append(f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{top + row_h * len(bars)}" '
                     f'stroke="#d9d9d9" stroke-width="1"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{top - 10}" font-size="11" text-anchor="middle" '
                     f'fill="#595959">{_num(tick, 0)}%</text>')
        tick += 25.0
    progresses = {round(r.time_progress or 0.0, 2) for r in bars}
    labels: list[str] = []
    for i, r in enumerate(bars):
        y = top + i * row_h
        label = r.name + (f"（{r.unit_name}）" if r.unit_name else "")
        parts.append(f'<text x="{label_w}" y="{y + 16}" font-size="12" text-anchor="end" fill="#1a1a1a">'
                     f'<title>{escape(label)}</title>{escape(_clip(label, 17))}</text>')
        completion = r.completion or 0.0
        parts.append(f'<rect x="{left}" y="{y + 5}" width="{max(0.5, x(completion) - left):.1f}" height="14" '
                     f'fill="{COLOURS.get(r.level, COLOURS[None])}"/>')
        over = "›" if completion > scale_max else ""
        # Figures go above the 序时进度 line, with a white halo, so the line never strikes them out.
        labels.append(f'<text x="{x(completion) + 4:.1f}" y="{y + 16}" font-size="11" fill="#1a1a1a" '
                     f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{_num(completion)}%{over}</text>')
        if len(progresses) > 1 and r.time_progress is not None:
            px = x(r.time_progress)
            parts.append(f'<line x1="{px:.1f}" y1="{y + 2}" x2="{px:.1f}" y2="{y + 22}" stroke="{PROGRESS_COLOUR}" '
                         f'stroke-width="2"/>')
    if len(progresses) == 1:
        p = progresses.pop()
        px = x(p)
        parts.append(f'<line x1="{px:.1f}" y1="{top - 4}" x2="{px:.1f}" y2="{top + row_h * len(bars) + 2}" '
                     f'stroke="{PROGRESS_COLOUR}" stroke-width="1.6" stroke-dasharray="5,3"/>')
        parts.append(f'<text x="{px + 4:.1f}" y="{top + row_h * len(bars) + 14}" font-size="11" '
                     f'fill="{PROGRESS_COLOUR}">序时进度 {_num(p)}%</text>')
    parts += labels
    legend_y = height - 12
    lx = 60
    for level, name in (("green", "绿灯：不慢于序时进度"), ("yellow", "黄灯：慢于序时进度"), ("red", "红灯：明显滞后")):
        parts.append(f'<rect x="{lx}" y="{legend_y - 10}" width="12" height="12" fill="{COLOURS[level]}"/>')
        parts.append(f'<text x="{lx + 16}" y="{legend_y}" font-size="11" fill="#1a1a1a">{name}</text>')
        lx += 150
    parts.append(f'<line x1="{lx}" y1="{legend_y - 4}" x2="{lx + 18}" y2="{legend_y - 4}" stroke="{PROGRESS_COLOUR}" '
                 f'stroke-width="1.6" stroke-dasharray="5,3"/>')
    parts.append(f'<text x="{lx + 22}" y="{legend_y}" font-size="11" fill="#1a1a1a">序时进度</text>')
    parts.append("</svg>")
    return Markup("".join(parts)), note


def project_chart(categories: Sequence[CategoryTotal]) -> Markup:
    """Per category: the year's planned investment, what the time progress asks for, and what is done."""
    shown = [c for c in categories if c.planned > 0]
    if not shown:
        return Markup("")
    series = (("年度计划投资", "#c8c8c8", lambda c: c.planned),
              ("序时应完成", "#8fb3d9", lambda c: c.expected),
              ("实际完成", "#1f4e79", lambda c: c.done))
    height, top, bottom, left = 276, 24, 196, 56
    plot_w = WIDTH - left - 16
    group_w = plot_w / len(shown)
    bar_w = min(44.0, group_w / 4.5)
    peak = max(max(c.planned, c.done, c.expected) for c in shown)
    step = _nice_step(peak / 4)
    scale_max = step * math.ceil(peak / step) if peak > 0 else 1.0

    def y(value: float) -> float:
        return bottom - (bottom - top) * value / scale_max

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height}" '
             f'width="{WIDTH}" height="{height}" role="img" aria-label="重大项目分类别投资完成情况">']
    tick = 0.0
    while tick <= scale_max + 1e-9:
        parts.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{WIDTH - 16}" y2="{y(tick):.1f}" stroke="#d9d9d9"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#595959">{_num(tick, 2)}</text>')
        tick += step
    parts.append(f'<text x="{left - 6}" y="{top - 10}" font-size="11" text-anchor="end" fill="#595959">亿元</text>')
    for i, c in enumerate(shown):
        centre = left + group_w * (i + 0.5)
        for j, (_name, colour, value_of) in enumerate(series):
            value = value_of(c)
            bx = centre - 1.5 * bar_w + j * bar_w
            parts.append(f'<rect x="{bx + 2:.1f}" y="{y(value):.1f}" width="{bar_w - 4:.1f}" '
                         f'height="{max(0.5, bottom - y(value)):.1f}" fill="{colour}"/>')
            parts.append(f'<text x="{bx + bar_w / 2:.1f}" y="{y(value) - 4:.1f}" font-size="11" '
                         f'text-anchor="middle" fill="#1a1a1a">{_num(value, 2)}</text>')
        completion = f"完成率{_num(c.completion or 0.0)}%" if c.completion is not None else ""
        parts.append(f'<text x="{centre:.1f}" y="{bottom + 18}" font-size="13" text-anchor="middle" '
                     f'fill="#1a1a1a">{escape(c.category)}（{c.projects}个）</text>')
        parts.append(f'<text x="{centre:.1f}" y="{bottom + 34}" font-size="11" text-anchor="middle" '
                     f'fill="#595959">{completion}</text>')
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - 16}" y2="{bottom}" stroke="#595959"/>')
    lx = left
    for name, colour, _value_of in series:
        parts.append(f'<rect x="{lx}" y="{height - 16}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="{height - 6}" font-size="11" fill="#1a1a1a">{name}</text>')
        lx += 120
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


__all__ = ["indicator_chart", "project_chart"]
