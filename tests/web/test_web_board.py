"""The board as the working group reads it: real months in indicator names, tasks named by their
measure, units picked by name."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

from sqlalchemy import select
from webkit import LEAD_INDICATOR, UNIT, rule_set

from duban.app import board
from duban.store.db import transaction
from duban.store.models import Task, TaskUnit
from duban.store.periods import SHANGHAI
from duban.store.web_models import BoardLight

PLACEHOLDER = "1—N月"


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _pages(client, path: str) -> list[str]:
    """Every page of a board listing."""
    first = client.get(path)
    assert first.status_code == 200
    pages = [first.text]
    found = re.search(r"第 1/(\d+) 页", first.text)
    for number in range(2, int(found.group(1)) + 1 if found else 2):
        page = client.get(f"{path}{'&' if '?' in path else '?'}page={number}")
        assert page.status_code == 200
        pages.append(page.text)
    return pages


def test_no_placeholder_months_on_the_board_a_unit_page_or_a_drill_down(site):
    office = site.sign_in("office")
    pages = _pages(office, "/board")
    assert all(PLACEHOLDER not in page for page in pages)
    # The months the figure covers, as the notices write them (June is not in yet: 1—5月).
    assert "服务业投资增速（2023年1—5月同比）" in "".join(pages)
    unit_page = office.get(f"/unit/{UNIT}").text
    assert PLACEHOLDER not in unit_page and "服务业投资增速（2023年1—" in unit_page
    drill = office.get(f"/board/subject/indicator/{LEAD_INDICATOR}").text
    assert PLACEHOLDER not in drill and "服务业投资增速（2023年1—5月同比）" in drill
    form = site.sign_in(UNIT).get(f"/unit/{UNIT}/report").text
    assert PLACEHOLDER not in form and "服务业投资增速（2023年1—6月同比）" in form  # the month being reported
    with transaction(site.engine) as session:
        assert not session.scalars(select(BoardLight.subject_name).where(BoardLight.subject_name.contains(PLACEHOLDER))).all()


def test_task_rows_name_the_measure_under_their_group(site):
    # After the year's deadlines, when the tasks not done are lit.
    site.clock.at = dt.datetime(2024, 1, 31, 9, 0, tzinfo=SHANGHAI)
    board.refresh_all(site.engine, rule_set(), site.clock.at)
    office = site.sign_in("office")
    with transaction(site.engine) as session:
        code = session.scalars(select(BoardLight.subject).where(BoardLight.subject_type == "task")).first()
        assert code, "the example has task lights"
        task = session.get(Task, code)
        lead = session.scalar(select(TaskUnit.unit_code).where(TaskUnit.task_code == code).order_by(TaskUnit.position))
        text = board.task_text(task)
    assert text.measure and text.group == task.title
    page = "".join(_pages(office, "/board?kind=task"))
    assert f'title="{text.measure}"' in unescape(page) and text.short in unescape(page)
    assert f'<span class="group">{task.title}</span>' in unescape(page)
    drill = unescape(office.get(f"/board/subject/task/{code}").text)
    assert "具体举措" in drill and text.measure in drill and "牵头单位" in drill
    unit_page = unescape(office.get(f"/unit/{lead}").text)
    assert text.short in unit_page and f'title="{text.measure}"' in unit_page
    # The measure's words find the task.
    words = text.measure[:6]
    found = _text(office.get(f"/board?q={words}").text)
    assert text.short.rstrip("…")[:6] in found


def test_the_unit_filter_takes_a_name_or_a_code(site):
    office = site.sign_in("office")
    with transaction(site.engine) as session:
        mine = session.scalars(board._join_unit(select(BoardLight.id), UNIT)).all()
    page = office.get("/board")
    assert "单位代码" not in page.text
    assert re.search(r'<select name="unit">.*<option value="fgj"\s*>区发改局</option>', page.text, re.S)
    by_name = office.get("/board?unit=区发改局")
    by_code = office.get("/board?unit=fgj")
    part = office.get("/board?unit=发改")
    for response in (by_name, by_code, part):
        assert response.status_code == 200
        assert f"区发改局：共 {len(mine)} 项" in _text(response.text), re.findall(r"class=\"count\">[^<]*", response.text)
    nothing = office.get("/board?unit=不存在的局")
    assert "没有名称为“不存在的局”的单位" in nothing.text and "共 0 项" in _text(nothing.text)
    several = office.get("/board?unit=区")
    assert "名称含“区”的单位有多个" in several.text


def test_a_large_programme_types_the_name_with_suggestions(site, monkeypatch):
    monkeypatch.setattr(board, "PICKER_SELECT_MAX", 3)
    office = site.sign_in("office")
    page = office.get("/board?unit=fgj").text
    assert '<input name="unit" list="unit-names" value="区发改局"' in page
    assert '<option value="区发改局"></option>' in page and '<select name="unit">' not in page


def test_the_first_month_ranked_shows_no_rise_or_fall_and_says_how_it_differs_from_the_quarterly(site):
    # Only one month ranked so far: "新上榜" beside every unit would read as if all had just entered.
    text = _text(site.sign_in("office").get("/board/ranking").text)
    assert "上月尚无排名记录，暂无升降" in text and "新上榜" not in text
    assert "季度通报的争先创优排名按完成进度与序时进度之差" in text
