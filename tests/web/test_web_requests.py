"""Progress, 销号 and extension requests: evidence, approval or return with a comment, everything on the record."""

from __future__ import annotations

import datetime as dt
import io

from sqlalchemy import select
from webkit import UNIT, csrf_of

from duban.store.db import transaction
from duban.store.models import Alert, Delivery, DeliveryPayload, Notice, Task
from duban.store.web_models import Attachment, AuditEntry, UnitRequest

TASK = "L2023-04-2"  # 区发改局's own open task (L2023-01-1 was done when the plan was issued)
PDF = b"%PDF-1.4\n%evidence\n"


def _post(client, kind, text, files=(), **extra):
    page = client.get(f"/unit/{UNIT}/task/{TASK}")
    assert page.status_code == 200
    return client.post(f"/unit/{UNIT}/task/{TASK}", data={"csrf": csrf_of(page.text), "kind": kind, "text": text, **extra},
                       files=[("files", f) for f in files])


def _firing_alert(site) -> int:
    with transaction(site.engine) as session:
        alert = Alert(rule="lucheng.task_deadline", subject_type="task", subject=TASK, period="2023-12-31",
                      kind="warning", level="yellow", state="firing", units=[UNIT], notify_units=[UNIT],
                      title="任务临近时限", facts={}, level_history=[], first_seen=site.clock(), last_seen=site.clock())
        session.add(alert)
        session.flush()
        return alert.id


def _decide(office, request_id, decision, comment=""):
    page = office.get("/office")
    return office.post(f"/office/request/{request_id}",
                       data={"csrf": csrf_of(page.text), "decision": decision, "comment": comment})


def test_the_office_approves_a_closing_and_the_notice_lands_in_the_outbox(site):
    alert_id = _firing_alert(site)
    unit = site.sign_in(UNIT)
    response = _post(unit, "close", "国际时尚中心项目已开工，年度计划投资已完成。", [("开工证明.pdf", io.BytesIO(PDF), "application/pdf")])
    assert response.status_code == 303
    office = site.sign_in("office")
    assert "开工证明.pdf" in office.get("/office").text
    with transaction(site.engine) as session:
        request_id = session.scalars(select(UnitRequest.id)).one()
    assert _decide(office, request_id, "approve", "材料齐全，同意销号。").status_code == 303
    with transaction(site.engine) as session:
        alert = session.get(Alert, alert_id)
        assert alert.state == "resolved" and alert.level_history[-1]["by"] == "office"
        task = session.get(Task, TASK)
        assert (task.status, task.done_on) == ("done", dt.date(2023, 7, 15))
        notice = session.scalars(select(Notice).where(Notice.kind == "resolved")).one()
        assert notice.recipient_unit == UNIT and "同意销号" in notice.title
        mail = session.scalars(select(Delivery).where(Delivery.subject.startswith("【销号通知】"))).one()
        assert mail.address == "fgj@lucheng.example.org" and mail.status == "pending"
        payload = session.get(DeliveryPayload, mail.id).payload
        assert b"Subject:" in payload
        actions = [(a.action, a.actor) for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                   if a.action in ("request", "approve")]
        assert actions == [("request", UNIT), ("approve", "office")]
    assert "已同意" in unit.get(f"/unit/{UNIT}/task/{TASK}").text


def test_a_closing_needs_evidence(site):
    unit = site.sign_in(UNIT)
    response = _post(unit, "close", "已完成。")
    assert response.status_code == 422 and "须附完成佐证材料" in response.text


def test_an_extension_moves_the_deadline_when_approved(site):
    with transaction(site.engine) as session:
        session.get(Task, TASK).deadline = dt.date(2023, 9, 30)
    unit = site.sign_in(UNIT)
    assert _post(unit, "extend", "审批流程延长。", new_deadline="2023-11-30").status_code == 303
    office = site.sign_in("office")
    with transaction(site.engine) as session:
        request_id = session.scalars(select(UnitRequest.id)).one()
    _decide(office, request_id, "approve")
    with transaction(site.engine) as session:
        task = session.get(Task, TASK)
        assert task.deadline == dt.date(2023, 11, 30)
        assert session.get(UnitRequest, request_id).old_deadline == dt.date(2023, 9, 30)


def test_an_extension_after_the_deadline_or_to_an_earlier_date_is_refused(site):
    with transaction(site.engine) as session:
        session.get(Task, TASK).deadline = dt.date(2023, 7, 1)
    unit = site.sign_in(UNIT)
    late = _post(unit, "extend", "来不及。", new_deadline="2023-12-31")
    assert late.status_code == 422 and "延期申请须在时限前提出" in late.text
    with transaction(site.engine) as session:
        session.get(Task, TASK).deadline = dt.date(2023, 9, 30)
    earlier = _post(unit, "extend", "提前。", new_deadline="2023-08-31")
    assert earlier.status_code == 422 and "须晚于原时限" in earlier.text


def test_a_returned_request_keeps_its_comment_and_nothing_is_deleted(site):
    unit = site.sign_in(UNIT)
    _post(unit, "close", "已完成。", [("a.pdf", io.BytesIO(PDF), "application/pdf")])
    office = site.sign_in("office")
    with transaction(site.engine) as session:
        request_id = session.scalars(select(UnitRequest.id)).one()
    refused = _decide(office, request_id, "return")
    assert refused.status_code == 422 and "退回申请须写明理由" in refused.text
    assert _decide(office, request_id, "return", "缺少开工证明。").status_code == 303
    again = _decide(office, request_id, "approve")
    assert again.status_code == 422 and "不能重复审批" in again.text
    with transaction(site.engine) as session:
        request = session.get(UnitRequest, request_id)
        assert (request.state, request.decision_comment, request.decided_by) == ("returned", "缺少开工证明。", "office")
        assert session.get(Task, TASK).status == "open"
        assert len(session.scalars(select(Attachment)).all()) == 1
    assert "缺少开工证明。" in unit.get(f"/unit/{UNIT}/task/{TASK}").text


def test_attachments_too_big_of_the_wrong_type_or_disguised_are_refused(site):
    unit = site.sign_in(UNIT)
    exe = _post(unit, "progress", "见附件", [("run.exe", io.BytesIO(b"MZ..."), "application/octet-stream")])
    assert exe.status_code == 422 and "类型不允许" in exe.text
    fake = _post(unit, "progress", "见附件", [("scan.pdf", io.BytesIO(b"<html><script>"), "application/pdf")])
    assert fake.status_code == 422 and "内容与扩展名 .pdf 不符" in fake.text
    big = _post(unit, "progress", "见附件", [("big.pdf", io.BytesIO(b"%PDF" + b"0" * (10 * 1024 * 1024)), "application/pdf")])
    assert big.status_code in (413, 422) and "过大" in big.text
    with transaction(site.engine) as session:
        assert session.scalars(select(UnitRequest)).all() == []


def test_attachments_are_served_as_downloads_to_their_unit_and_the_office_only(site):
    unit = site.sign_in(UNIT)
    _post(unit, "progress", "进展", [("记录.pdf", io.BytesIO(PDF), "application/pdf")])
    with transaction(site.engine) as session:
        attachment_id = session.scalars(select(Attachment.id)).one()
    response = unit.get(f"/attachment/{attachment_id}")
    assert response.status_code == 200 and response.content == PDF
    assert response.headers["content-disposition"].startswith("attachment;")
    assert site.sign_in("office").get(f"/attachment/{attachment_id}").status_code == 200
    assert site.sign_in("tjj").get(f"/attachment/{attachment_id}").status_code == 403


XSS = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'><svg onload=alert(3)>'


def test_script_in_every_field_a_unit_writes_is_shown_as_text(site):
    """Request text, attachment name, submission note and the typed figure: each is escaped where shown."""
    unit = site.sign_in(UNIT)
    _post(unit, "close", XSS, [(f"{XSS}.pdf", io.BytesIO(PDF), "application/pdf")])
    page = unit.get(f"/unit/{UNIT}/report")
    field = "v:service_investment_growth|2023-06|"
    note = "note:service_investment_growth|2023-06|"
    bad = unit.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), field: XSS, note: XSS})
    ok = unit.post(f"/unit/{UNIT}/report", data={"csrf": csrf_of(page.text), field: "9", note: XSS})
    receipt = unit.get(ok.headers["location"])
    office = site.sign_in("office")
    pages = [unit.get(f"/unit/{UNIT}/task/{TASK}").text, office.get("/office").text, bad.text, receipt.text,
             office.get(f"/board/subject/task/{TASK}").text, office.get("/office/audit").text]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[3]


def _failed_delivery(site, status="failed") -> int:
    with transaction(site.engine) as session:
        row = Delivery(idempotency_key=f"test|{status}", message_id=f"<{status}@test>", channel="email", address="fgj@lucheng.example.org",
                       subject="【督办提醒】测试", status=status, attempts=8, next_attempt_at=site.clock(),
                       created_at=site.clock(), last_error="550 mailbox unavailable", recipient_unit=UNIT)
        session.add(row)
        session.flush()
        return row.id


def test_the_office_retries_a_failed_delivery_through_the_outboxs_requeue(site):
    failed, sent = _failed_delivery(site), _failed_delivery(site, "sent")
    office = site.sign_in("office")
    page = office.get("/office/outbox")
    assert f"/office/outbox/{failed}/retry" in page.text
    assert office.post(f"/office/outbox/{failed}/retry", data={"csrf": csrf_of(page.text)}).status_code == 303
    refused = office.post(f"/office/outbox/{sent}/retry", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 422 and "已发送成功，不会重复发送" in refused.text
    with transaction(site.engine) as session:
        row = session.get(Delivery, failed)
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, site.clock())
        assert session.get(Delivery, sent).status == "sent"
        retries = [(a.actor, a.object_id) for a in session.scalars(select(AuditEntry).where(AuditEntry.action == "retry"))]
        assert retries == [("office", str(failed))]


def _steps(page_text: str) -> list[list[str]]:
    import re

    table = page_text.split('<table class="history">', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_a_requests_history_shows_every_step_with_who_when_and_why(site):
    unit = site.sign_in(UNIT)
    _post(unit, "close", "项目已开工。", [("开工证明.pdf", io.BytesIO(PDF), "application/pdf")])
    office = site.sign_in("office")
    with transaction(site.engine) as session:
        first = session.scalars(select(UnitRequest.id)).one()
    assert _decide(office, first, "return", "缺少开工证明，请补充。").status_code == 303
    site.clock.at += dt.timedelta(hours=2)
    _post(unit, "close", "已补充实施方案。", [("实施方案.pdf", io.BytesIO(PDF), "application/pdf")])
    with transaction(site.engine) as session:
        second = max(session.scalars(select(UnitRequest.id)))
    assert _decide(office, second, "approve", "同意销号。").status_code == 303

    for client in (unit, office, site.sign_in("leader")):
        page = client.get(f"/unit/{UNIT}/request/{first}")
        assert page.status_code == 200
        steps = _steps(page.text)
        assert [s[2] for s in steps] == ["提交销号申请", "退回申请"]
        assert steps[0][0] == "2023年7月15日 09:00" and steps[0][1].endswith("（责任单位）") and steps[0][3] == "待审批"
        assert "项目已开工" in steps[0][4] and "附件 1 个" in steps[0][5]
        assert steps[1][1].endswith("（办公室）") and steps[1][3] == "已退回" and "缺少开工证明" in steps[1][4]
    steps = _steps(office.get(f"/unit/{UNIT}/request/{second}").text)
    assert [(s[0], s[2], s[3]) for s in steps] == [("2023年7月15日 11:00", "提交销号申请", "待审批"),
                                                   ("2023年7月15日 11:00", "同意申请", "已同意")]
    # The task page and the office's list link each request to its history.
    assert f'href="/unit/{UNIT}/request/{first}"' in unit.get(f"/unit/{UNIT}/task/{TASK}").text
    assert site.sign_in("tjj").get(f"/unit/{UNIT}/request/{first}").status_code == 403
    assert office.get(f"/unit/tjj/request/{first}").status_code == 404
    assert office.get(f"/unit/{UNIT}/request/9999").status_code == 404
