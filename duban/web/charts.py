"""A server-side SVG line chart of one indicator's figures (Chinese labels, no JavaScript)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 260, 56, 16, 20, 44


def _period(code: str) -> str:
    """A stored period as a reader writes it: 2023-06 → 2023年6月, 2023-Q2 → 2023年第二季度."""
    from duban.notifiers.render import period_cn

    return period_cn(code)


def _axis(code: str, before: str) -> str:
    """An axis label: the month alone ("6月") once its year has been named on the axis."""
    if len(code) == 7 and code[4] == "-" and code[5:].isdigit() and before[:4] == code[:4]:
        return f"{int(code[5:])}月"
    return _period(code)


def _fmt(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def line_chart(points: Sequence[tuple[str, float]], *, measure: str = "", title: str = "") -> Markup:
    if not points:
        return Markup("")
    values = [v for _, v in points]
    low, high = min(0.0, min(values)), max(values)
    if high == low:
        high = low + 1.0
    span_x = max(1, len(points) - 1)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + inner_w * i / span_x

    def y(v: float) -> float:
        return TOP + inner_h * (1 - (v - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title or "数值走势")}" font-size="11">']
    for k in range(5):
        v = low + (high - low) * k / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e0e0e0"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#5f6368">{escape(_fmt(v))}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="#b71c1c" stroke-width="2"/>')
    step = max(1, len(points) // 12)
    named = ""  # the last period labelled on the axis
    for i, (label, v) in enumerate(points):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="#b71c1c"><title>{escape(_period(label))}：'
                     f'{escape(_fmt(v))}{escape(measure)}</title></circle>')
        if i % step == 0 or i == len(points) - 1:
            anchor = "start" if i == 0 and len(points) > 1 else "end" if i == len(points) - 1 and i else "middle"
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" fill="#5f6368">'
                         f'{escape(_axis(label, named))}</text>')
            named = label
    if measure:
        parts.append(f'<text x="{LEFT}" y="{TOP - 6}" fill="#5f6368">单位：{escape(measure)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
