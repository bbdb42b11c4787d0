"""The office's and a unit's pages read as officials write: names not codes, Chinese not keys, no '{}'."""

from __future__ import annotations

import datetime as dt
import re

from webkit import LEAD_INDICATOR, UNIT, csrf_of

from duban.store.db import transaction
from duban.store.models import Alert, Delivery

JUNE = f"v:{LEAD_INDICATOR}|2023-06|"


def _text(page: str) -> str:
    """The visible words of a page's main part, tags dropped."""
    main = page.split("<main>", 1)[-1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def _alert(site, kind: str, level: str, title: str) -> int:
    with transaction(site.engine) as session:
        alert = Alert(rule=f"lucheng.{kind}", subject_type="unit", subject=UNIT, period="2023-Q2", kind=kind, level=level,
                      state="firing", units=[UNIT], notify_units=[UNIT], title=title, facts={}, level_history=[],
                      first_seen=site.clock(), last_seen=site.clock())
        session.add(alert)
        session.flush()
        return alert.id


def test_the_office_is_named_once_on_the_sign_in_page_and_in_the_header(site):
    client = site.client()
    confirm = client.get(site.link("office"))
    assert "此链接供<strong>工作专班办公室</strong>登录督办平台" in confirm.text
    response = client.post(site.link("office"), data={"csrf": csrf_of(client.get(site.link("office")).text)})
    assert response.status_code == 303
    page = client.get("/office")
    assert "<span>工作专班办公室</span>" in page.text and "办公室（办公室）" not in page.text
    unit = site.sign_in(UNIT).get(f"/unit/{UNIT}")
    assert "<span>区发改局（责任单位）</span>" in unit.text


def test_the_audit_page_says_who_did_what_to_which_object_when_in_words(site):
    unit = site.sign_in(UNIT)
    form = unit.get(f"/unit/{UNIT}/report")
    receipt = unit.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(form.text), JUNE: "12.5"})
    assert receipt.status_code == 303
    office = site.sign_in("office")
    warning = _alert(site, "warning", "yellow", "服务业投资增速低于目标")
    alerts = office.get("/office/alerts")
    acked = office.post(f"/office/alerts/{warning}/ack",
                        data={"csrf": csrf_of(alerts.text), "until": "2023-07-31", "reason": "已电话督促"})
    assert acked.status_code == 303
    page = office.get("/office/audit")
    assert page.status_code == 200
    text = _text(page.text)
    assert "{}" not in page.text and " user " not in text and "submission" not in text
    assert "区发改局（责任单位） 在线报送" in text
    assert re.search(r"2023年7月15日 09:00 区发改局（责任单位） 在线报送 报送回执 HZ20230715-\d{6} 数据 1 项", text)
    assert receipt.headers["location"] in page.text  # the receipt is linked
    assert "工作专班办公室 确认告警" in text and f"告警 #{warning}：服务业投资增速低于目标" in text
    assert "至 2023年7月31日；理由：已电话督促" in text
    assert "工作专班办公室 密码登录 —" in text and "区发改局（责任单位） 通过一次性链接登录 —" in text


def test_praise_is_listed_apart_with_nothing_to_acknowledge(site):
    praise = _alert(site, "praise", "green", "“区发改局”2023年第二季度牵头任务全部按时完成")
    warning = _alert(site, "warning", "red", "服务业投资增速低于目标")
    office = site.sign_in("office")
    page = office.get("/office/alerts")
    warnings, _, rest = page.text.partition("通报表扬")
    assert "服务业投资增速低于目标" in warnings and f"/office/alerts/{warning}/ack" in warnings
    assert "牵头任务全部按时完成" not in warnings and "牵头任务全部按时完成" in rest
    assert f"/office/alerts/{praise}/ack" not in page.text
    refused = office.post(f"/office/alerts/{praise}/ack",
                          data={"csrf": csrf_of(page.text), "until": "2023-07-31", "reason": "无"})
    assert refused.status_code == 422 and "通报表扬" in refused.text


def test_one_message_to_two_mailboxes_shows_both_addresses(site):
    at = dt.datetime(2023, 7, 15, 0, 30, tzinfo=dt.UTC)
    with transaction(site.engine) as session:
        for n, address in enumerate(["zhuanban@lucheng.example.org", "zhuanban2@lucheng.example.org"]):
            session.add(Delivery(idempotency_key=f"digest|{n}", message_id=f"<digest-{n}@x>", channel="email",
                                 recipient_unit="zhuanban", address=address, subject="【督办】每日监测", status="sent",
                                 attempts=1, next_attempt_at=at, created_at=at))
    page = site.sign_in("office").get("/office/outbox")
    assert "<th>收件地址</th>" in page.text
    assert "<td>zhuanban@lucheng.example.org</td>" in page.text and "<td>zhuanban2@lucheng.example.org</td>" in page.text


def test_each_report_row_says_what_to_enter_and_shows_the_last_figure(site):
    from duban.app.portal import entry_label, last_reported

    assert entry_label("cumulative", "month", 2023, 12) == "2023年12月当月值（仅本月新增）"
    assert entry_label("cumulative", "", 2023, 12) == "2023年1—12月累计"
    assert entry_label("cumulative", "ytd", 2023, 12) == "2023年1—12月累计"
    assert entry_label("cumulative", "to_date", 2023, 12) == "截至2023年12月底累计（自工程启动以来）"
    monthly = {"2023-10": 4.0, "2023-11": 6.0, "2022-12": 9.0}
    assert last_reported(monthly, "2023-12", "cumulative", "month", "家") == "2023年11月：6家（当月值；2023年1—11月合计10家）"
    assert last_reported({"2023-11": 55.0}, "2023-12", "cumulative", "ytd", "家") == "2023年11月：55家（1—11月累计）"
    assert last_reported({}, "2023-12", "cumulative", "ytd", "家") == ""

    page = site.sign_in(UNIT).get(f"/unit/{UNIT}/report")
    text = _text(page.text)
    assert "填：2023年1—6月同比增速" in text  # 服务业投资增速（1—N月同比）
    assert "填：2023年6月当月值（仅本月新增）" in text  # 省级服务业重大项目完成投资, reported month by month
    assert re.search(r"上次报送 2023年5月：[\d.]+亿元（当月值；2023年1—5月合计[\d.]+亿元）", text)


def test_the_unit_page_names_each_lights_category_in_chinese_and_its_target_with_its_measure(site):
    from duban.app.board import SUBJECT_LABELS, unit_lights
    from duban.notifiers.render import format_figure

    with transaction(site.engine) as session:
        lights = unit_lights(session, UNIT, limit=100)
    kinds = {r.subject_type for r in lights}
    assert "project_list" in kinds  # the project lists the unit leads
    page = site.sign_in(UNIT).get(f"/unit/{UNIT}")
    for kind in kinds:
        assert f"<td>{kind}</td>" not in page.text
        assert f"<td>{SUBJECT_LABELS[kind]}</td>" in page.text
    targets = [r for r in lights if r.threshold is not None and r.measure]
    assert targets
    for r in targets:
        assert f"<td>{format_figure(r.threshold, r.measure)}</td>" in page.text
    assert "项目清单" in page.text


def test_an_uploaded_sheet_may_name_the_unit_by_its_name(site):
    import io

    from webkit import stored

    client = site.sign_in(UNIT)
    page = client.get(f"/unit/{UNIT}/report")
    assert "单位（填本单位名称，全区数据留空）" in page.text and "本单位代码" not in page.text
    sheet = "指标,期间,数值,单位\nservice_investment_growth,2023年6月,11.2,区发改局\n".encode()
    response = client.post(f"/unit/{UNIT}/upload", data={"csrf": csrf_of(page.text)},
                           files={"sheet": ("月度数据.csv", io.BytesIO(sheet), "text/csv")})
    assert response.status_code == 303, response.text
    assert stored(site.engine, LEAD_INDICATOR, "2023-06", UNIT) == 11.2
    other = "指标,期间,数值,单位\nservice_investment_growth,2023年6月,11.2,区统计局\n".encode()
    response = client.post(f"/unit/{UNIT}/upload", data={"csrf": csrf_of(page.text)},
                           files={"sheet": ("月度数据.csv", io.BytesIO(other), "text/csv")})
    assert response.status_code == 422 and "不能报送单位“区统计局”的数据" in response.text


def test_two_units_alerts_on_one_task_group_are_told_apart_by_unit_and_measure(site):
    # "高效率实施服务业重大项目" twice, for two units: the rows name the units and each task's measure.
    with transaction(site.engine) as session:
        for task, units in (("L2023-04-1", ["fgj", "zhuanban"]), ("L2023-04-2", ["fgj"])):
            session.add(Alert(rule="lucheng.task_deadline", subject_type="task", subject=task, period="2023-12-31",
                              kind="overdue", level="red", state="firing", units=units, notify_units=units,
                              title="重点任务“高效率实施服务业重大项目”已逾期", facts={}, level_history=[],
                              first_seen=site.clock(), last_seen=site.clock()))
    text = _text(site.sign_in("office").get("/office/alerts").text)
    assert "区发改局（牵头）、" in text and "重点推进“千项万亿”工程服务业项目" in text


def test_a_task_page_shows_its_light_and_no_goal_that_only_repeats_the_deadline(site):
    with transaction(site.engine) as session:
        session.add(Alert(rule="lucheng.task_deadline", subject_type="task", subject="L2023-04-2", period="2023-12-31",
                          kind="overdue", level="red", state="firing", units=["fgj"], notify_units=["fgj"],
                          title="重点任务“高效率实施服务业重大项目”已逾期", facts={}, level_history=[],
                          first_seen=site.clock(), last_seen=site.clock()))
    text = _text(site.sign_in(UNIT).get(f"/unit/{UNIT}/task/L2023-04-2").text)
    assert "红灯" in text.split("状态：", 1)[1][:12] and "推进中" not in text
