"""报送 online: the same import as `duban import`, all or nothing, a receipt shown and mailed, the light updated."""

from __future__ import annotations

import email
import email.policy
import html
import io

from sqlalchemy import select
from webkit import LEAD_INDICATOR, UNIT, csrf_of, stored

from duban.app.board import subject_lights
from duban.store.db import transaction
from duban.store.models import Delivery, DeliveryPayload, ObservationRevision, Unit
from duban.store.web_models import AuditEntry, BoardLight, Submission

JUNE = f"v:{LEAD_INDICATOR}|2023-06|"


def _form(client, code=UNIT):
    page = client.get(f"/unit/{code}/report")
    assert page.status_code == 200
    return page


def test_the_unit_sees_what_it_owes_with_the_calendars_due_date(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    assert "服务业投资增速" in page.text and "2023年6月" in page.text
    assert "2023年7月10日" in page.text  # the 10th of July is a working day (a Monday)
    assert f'name="{JUNE}"' in page.text


def test_a_submission_is_stored_receipted_mailed_and_lights_the_board(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    with transaction(site.engine) as session:
        before = {(r.rule, r.subject): (r.level, r.value) for r in subject_lights(session, "indicator", LEAD_INDICATOR)}
    response = client.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), JUNE: "12.5"})
    assert response.status_code == 303
    receipt = client.get(response.headers["location"])
    assert "报送成功" in receipt.text and "12.5" in receipt.text
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") == 12.5
    with transaction(site.engine) as session:
        submission = session.scalars(select(Submission)).one()
        assert submission.number in receipt.text and submission.values_hash in receipt.text
        assert submission.values == [[LEAD_INDICATOR, "2023-06", "", 12.5]]
        mails = list(session.scalars(select(Delivery).where(Delivery.subject.contains(submission.number))))
        assert [m.address for m in mails] == ["fgj@lucheng.example.org"]
        payload = session.get(DeliveryPayload, mails[0].id)
        body = email.message_from_bytes(payload.payload, policy=email.policy.default).get_body(("plain",)).get_content()
    # The receipt as the officer who filed reads it: who by name, Chinese dates and periods, no codes.
    assert "报送人：区发改局" in body and "2023年6月：12.5" in body and "2023年7月" in body
    assert LEAD_INDICATOR not in body and "2023-06" not in body
    assert "<dd>区发改局</dd>" in receipt.text
    with transaction(site.engine) as session:
        assert session.scalars(select(AuditEntry.action)).all()[-1] == "submit"
        after = {(r.rule, r.subject): (r.level, r.value) for r in subject_lights(session, "indicator", LEAD_INDICATOR)}
        updated = session.scalar(select(BoardLight.updated_at).where(BoardLight.subject == LEAD_INDICATOR))
    assert after != before  # the figure the board shows is June's now
    assert any(value == 12.5 for _, value in after.values())
    assert updated == site.clock()


def test_a_wrong_figure_gets_its_error_on_the_form_and_nothing_is_written(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    other = "v:major_projects|2023-06|"
    response = client.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), JUNE: "十二", other: "3"})
    assert response.status_code == 422
    assert "不是数值：'十二'" in html.unescape(response.text) and "本次报送未写入任何数据" in response.text
    assert 'class="invalid' in response.text and 'value="十二"' in response.text  # kept for correction
    assert stored(site.engine, "major_projects", "2023-06") is None  # the good row was not written either
    with transaction(site.engine) as session:
        assert session.scalars(select(Submission)).all() == []


def test_a_percent_on_a_figure_counted_in_units_is_the_importers_error(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    response = client.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), "v:new_above_scale_service_enterprises|2023-06|": "5%"})
    assert response.status_code == 422 and "不能填写百分数" in response.text


def test_a_correction_keeps_the_old_value_in_the_history(site):
    client = site.sign_in(UNIT)
    for value in ("12.5", "13.1"):
        page = _form(client)
        assert client.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), JUNE: value}).status_code == 303
    with transaction(site.engine) as session:
        revision = session.scalars(select(ObservationRevision)).one()
        assert (revision.old_value, revision.new_value, revision.changed_by) == (12.5, 13.1, "fgj（区发改局）")
        assert len(session.scalars(select(Submission)).all()) == 2
    assert "更正记录" in _form(client).text


def test_an_uploaded_sheet_goes_through_the_same_import(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    sheet = "指标,期间,数值,单位\nservice_investment_growth,2023年6月,11.2,\n".encode()
    response = client.post(f"/unit/{UNIT}/upload", data={"csrf": csrf_of(page.text)},
                           files={"sheet": ("月度数据.csv", io.BytesIO(sheet), "text/csv")})
    assert response.status_code == 303
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") == 11.2


def test_an_uploaded_sheet_with_errors_names_its_row_and_column(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    sheet = "指标,期间,数值,单位\nservice_investment_growth,2023-13,11.2,\n".encode()
    response = client.post(f"/unit/{UNIT}/upload", data={"csrf": csrf_of(page.text)},
                           files={"sheet": ("六月.csv", io.BytesIO(sheet), "text/csv")})
    assert response.status_code == 422
    assert "六月.csv:2:期间" in response.text


def test_a_unit_cannot_upload_another_units_figures_or_other_lists(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    sheet = "指标,期间,数值,单位\ntraining_person_times,2023-06,5,rsj\nfixed_asset_investment_growth,2023-06,3,\n".encode()
    response = client.post(f"/unit/{UNIT}/upload", data={"csrf": csrf_of(page.text)},
                           files={"sheet": ("月度数据.csv", io.BytesIO(sheet), "text/csv")})
    assert response.status_code == 422
    assert "不能报送单位“rsj”的数据" in response.text and "由牵头单位报送" in response.text
    units = "code,name,email\nfgj,改名,x@y.z\n".encode()
    response = client.post(f"/unit/{UNIT}/upload", data={"csrf": csrf_of(page.text)},
                           files={"sheet": ("units.csv", io.BytesIO(units), "text/csv")})
    assert response.status_code == 422 and "缺少" in response.text  # read as 月度数据, whose columns it lacks
    workbook = _workbook({"单位": [["代码", "名称", "邮箱"], ["fgj", "改名", "x@y.z"]]})
    response = client.post(f"/unit/{UNIT}/upload", data={"csrf": csrf_of(page.text)},
                           files={"sheet": ("报表.xlsx", io.BytesIO(workbook), "application/octet-stream")})
    assert response.status_code == 422 and "只接受“月度数据”" in response.text
    with transaction(site.engine) as session:
        assert session.get(Unit, "fgj").name == "区发改局"


def _workbook(sheets: dict[str, list[list[str]]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_uploads_too_big_or_of_the_wrong_type_are_refused(site):
    client = site.sign_in(UNIT)
    token = csrf_of(_form(client).text)
    wrong = client.post(f"/unit/{UNIT}/upload", data={"csrf": token},
                        files={"sheet": ("月度数据.exe", io.BytesIO(b"MZ"), "application/octet-stream")})
    assert wrong.status_code == 422 and "只能上传 .csv 或 .xlsx 文件" in wrong.text
    big = client.post(f"/unit/{UNIT}/upload", data={"csrf": token},
                      files={"sheet": ("月度数据.csv", io.BytesIO(b"x" * (5 * 1024 * 1024 + 10)), "text/csv")})
    assert big.status_code == 422 and "文件过大" in big.text


def test_a_form_without_its_csrf_token_is_refused(site):
    client = site.sign_in(UNIT)
    _form(client)
    response = client.post(f"/unit/{UNIT}/report", data={JUNE: "12.5"})
    assert response.status_code == 403
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") is None


def test_the_office_sees_who_has_not_reported_live(site):
    office = site.sign_in("office")
    assert "区发改局" in office.get("/office").text
    before = office.get("/office").text.count("区发改局")
    client = site.sign_in(UNIT)
    page = _form(client)
    owed = [name for name in _owed_fields(page.text)]
    client.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), **dict.fromkeys(owed, "1")})
    after = office.get("/office").text
    # The unit's owed row goes (with the example's indicators nobody else owes June: the list is empty).
    assert after.count("区发改局") < before or "<td colspan=\"5\">暂无。</td>" in after


def _owed_fields(page: str) -> list[str]:
    import re

    return re.findall(r'name="(v:[^"]+\|2023-06\|[^"]*)"', page)


def test_a_queried_figure_needs_its_own_explanation_then_goes_in_with_it(site):
    client = site.sign_in(UNIT)
    page = _form(client)
    note_june = f"note:{LEAD_INDICATOR}|2023-06|"
    other = "v:major_projects|2023-06|"
    queried = client.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), JUNE: "250", other: "2",
                                                         "note:major_projects|2023-06|": "另一项的说明"})
    assert queried.status_code == 422
    text = html.unescape(queried.text)
    assert ":数值: 【需核实】增速 250% 超出 -50% 至 100% 的合理范围" in text and "网页填报:" in text
    assert "请在“说明”栏写明原因" in text  # on the field itself
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") is None  # another row's 说明 does not excuse it
    page = _form(client)
    explained = client.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), JUNE: "250",
                                                           note_june: "新开工项目集中入统，已与统计局核实"})
    assert explained.status_code == 303
    assert stored(site.engine, LEAD_INDICATOR, "2023-06") == 250
    assert "新开工项目集中入统" in client.get(explained.headers["location"]).text
