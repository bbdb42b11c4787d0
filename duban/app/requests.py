"""A unit's requests on its tasks (进展报告、销号申请、延期申请) and the office's decisions on them.

Approval of a 销号 request marks the task done on the day of approval, resolves the task's firing
alerts (with a level-history step) and sends a 销号 notice through the outbox: one `Round` row keyed
`web-approval|<request>` carries the notices, as every round does. Approval of an extension moves
the task's deadline (the old one stays on the request). Returning a request keeps it, with the
comment. Nothing is deleted; every step is an audit row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from duban.app import audit
from duban.app.accounts import Principal
from duban.app.portal import Forbidden, PortalError
from duban.store.models import Alert, Notice, Round, Task, TaskUnit, Unit
from duban.store.periods import SHANGHAI, local_date
from duban.store.web_models import REQUEST_KIND_LABELS, Attachment, UnitRequest

ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
ATTACHMENT_MAX_FILES = 5
ATTACHMENT_TYPES = {".pdf": "application/pdf", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    ".txt": "text/plain"}
_MAGIC = {".pdf": (b"%PDF",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",), ".png": (b"\x89PNG",),
          ".docx": (b"PK\x03\x04",), ".xlsx": (b"PK\x03\x04",)}
TEXT_MAX = 4000


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def attachment_folder() -> Path | None:
    """DUBAN_ATTACHMENTS_DIR keeps files in a folder; without it they are stored in the database."""
    folder = os.environ.get("DUBAN_ATTACHMENTS_DIR")
    return Path(folder) if folder else None


def check_upload(upload: Upload) -> str:
    """'' when acceptable, otherwise why not (type by extension and by the file's first bytes)."""
    name = Path(upload.filename).name
    suffix = Path(name).suffix.lower()
    if suffix not in ATTACHMENT_TYPES:
        return f"附件“{name}”类型不允许，只接受 {'、'.join(sorted(ATTACHMENT_TYPES))}"
    if len(upload.data) > ATTACHMENT_MAX_BYTES:
        return f"附件“{name}”过大（{len(upload.data) // 1024} KB），上限 {ATTACHMENT_MAX_BYTES // 1024 // 1024} MB"
    if not upload.data:
        return f"附件“{name}”是空文件"
    magic = _MAGIC.get(suffix)
    if magic and not upload.data.startswith(magic):
        return f"附件“{name}”的内容与扩展名 {suffix} 不符"
    if suffix == ".txt":
        try:
            upload.data.decode("utf-8")
        except UnicodeDecodeError:
            return f"附件“{name}”不是 UTF-8 文本"
    return ""


def task_done(task: Task, today: dt.date) -> bool:
    """Done as of `today`: an imported done date later than today has not happened yet (replays, demos)."""
    return task.status == "done" and (task.done_on is None or task.done_on <= today)


def unit_tasks(session: Session, unit_code: str) -> list[Task]:
    codes = select(TaskUnit.task_code).where(TaskUnit.unit_code == unit_code)
    return list(session.scalars(select(Task).where(Task.code.in_(codes)).order_by(Task.deadline, Task.code)))


def task_of_unit(session: Session, who: Principal, unit_code: str, task_code: str) -> Task:
    if not who.may_see_unit(unit_code):
        raise Forbidden("无权查看其他单位的事项")
    task = session.get(Task, task_code)
    if task is None or unit_code not in task.unit_codes:
        raise Forbidden("该单位没有这项任务")
    return task


def post_request(session: Session, who: Principal, unit_code: str, task_code: str, kind: str, text: str, *,
                 now: dt.datetime, address: str = "", new_deadline: dt.date | None = None,
                 uploads: list[Upload] | None = None) -> UnitRequest:
    if not who.is_unit or who.unit_code != unit_code:
        raise Forbidden("只有本单位的填报人员可以报告进展或提出申请")
    task = task_of_unit(session, who, unit_code, task_code)
    if kind not in REQUEST_KIND_LABELS:
        raise PortalError("申请类型无效")
    text = text.strip()
    if not text:
        raise PortalError("请填写说明" if kind != "extend" else "请填写延期理由")
    if len(text) > TEXT_MAX:
        raise PortalError(f"说明过长（{len(text)} 字），上限 {TEXT_MAX} 字")
    uploads = [u for u in uploads or [] if u.filename]
    if len(uploads) > ATTACHMENT_MAX_FILES:
        raise PortalError(f"附件最多 {ATTACHMENT_MAX_FILES} 个")
    for upload in uploads:
        problem = check_upload(upload)
        if problem:
            raise PortalError(problem)
    today = local_date(now)
    if kind == "close" and not uploads:
        raise PortalError("销号申请须附完成佐证材料")
    if kind in ("close", "extend") and task_done(task, today):
        raise PortalError("该任务已完成销号")
    if kind == "extend":
        if new_deadline is None:
            raise PortalError("请填写申请延期至的日期")
        if task.deadline is not None and today > task.deadline:
            raise PortalError(f"任务时限 {task.deadline} 已过，延期申请须在时限前提出")
        if task.deadline is not None and new_deadline <= task.deadline:
            raise PortalError(f"新的时限须晚于原时限 {task.deadline}")
        if new_deadline <= today:
            raise PortalError("新的时限须在今天之后")
    open_same = session.scalar(select(UnitRequest.id).where(UnitRequest.task_code == task_code, UnitRequest.kind == kind,
                                                            UnitRequest.state == "open"))
    if kind != "progress" and open_same is not None:
        raise PortalError(f"该任务已有待审批的{REQUEST_KIND_LABELS[kind]}（#{open_same}），请等待办公室处理")
    request = UnitRequest(kind=kind, state="posted" if kind == "progress" else "open", unit_code=unit_code,
                          task_code=task_code, text=text, new_deadline=new_deadline if kind == "extend" else None,
                          old_deadline=task.deadline, user_id=who.user_id, created_by=who.login, created_at=now)
    session.add(request)
    session.flush()
    folder = attachment_folder()
    for upload in uploads:
        name = Path(upload.filename).name
        digest = hashlib.sha256(upload.data).hexdigest()
        stored_path = ""
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{request.id}-{digest[:16]}{Path(name).suffix.lower()}"
            target.write_bytes(upload.data)
            stored_path = str(target)
        session.add(Attachment(request_id=request.id, filename=name[:200],
                               content_type=ATTACHMENT_TYPES[Path(name).suffix.lower()], size=len(upload.data),
                               sha256=digest, data=None if folder is not None else upload.data, path=stored_path,
                               created_at=now))
    audit.record(session, who, "progress" if kind == "progress" else "request", at=now, address=address,
                 object_type="request", object_id=request.id, unit_code=unit_code, kind=kind, task=task_code,
                 attachments=len(uploads), new_deadline=new_deadline.isoformat() if new_deadline else None)
    return request


def attachment_bytes(attachment: Attachment) -> bytes:
    if attachment.data is not None:
        return attachment.data
    return Path(attachment.path).read_bytes()


def guess_type(filename: str) -> str:
    return ATTACHMENT_TYPES.get(Path(filename).suffix.lower()) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Decision:
    request: UnitRequest
    resolved_alerts: int = 0
    messages: int = 0


def decide(session: Session, who: Principal, request_id: int, approve: bool, comment: str, *, now: dt.datetime,
           address: str = "") -> Decision:
    if not who.is_office:
        raise Forbidden("只有办公室可以审批申请")
    request = session.get(UnitRequest, request_id)
    if request is None:
        raise PortalError(f"没有编号为 #{request_id} 的申请")
    if request.state != "open":
        raise PortalError(f"申请 #{request_id} 已处理（{request.state}），不能重复审批")
    comment = comment.strip()
    if not approve and not comment:
        raise PortalError("退回申请须写明理由")
    if len(comment) > TEXT_MAX:
        raise PortalError(f"意见过长，上限 {TEXT_MAX} 字")
    request.state = "approved" if approve else "returned"
    request.decided_by, request.decided_at, request.decision_comment = who.login, now, comment
    resolved = messages = 0
    task = session.get(Task, request.task_code)
    if approve and task is not None:
        if request.kind == "close":
            task.status, task.done_on = "done", local_date(now)
            resolved, messages = _close_alerts(session, task, request, now)
        elif request.kind == "extend" and request.new_deadline is not None:
            task.deadline = request.new_deadline
            task.deadline_text = f"{audit.chinese_date(request.new_deadline)}（经批准延期）"
    audit.record(session, who, "approve" if approve else "return", at=now, address=address, object_type="request",
                 object_id=request.id, unit_code=request.unit_code, kind=request.kind, task=request.task_code,
                 comment=comment, resolved_alerts=resolved)
    return Decision(request, resolved, messages)


def _close_alerts(session: Session, task: Task, request: UnitRequest, now: dt.datetime) -> tuple[int, int]:
    """Resolve the task's firing alerts and send the unit a 销号 notice through the outbox."""
    from duban.app.rounds import mail_from
    from duban.notifiers.message import MessageError, build_email
    from duban.notifiers.outbox import enqueue

    round_row = Round(key=f"web-approval|{request.id}", job="web", at=now, started_at=now, finished_at=now,
                      summary={"request": request.id, "task": task.code})
    session.add(round_row)
    session.flush()
    alerts = list(session.scalars(select(Alert).where(Alert.subject_type == "task", Alert.subject == task.code,
                                                      Alert.state == "firing")))
    for alert in alerts:
        alert.state, alert.resolved_at = "resolved", now
        alert.level_history = [*(alert.level_history or []), {"at": now.isoformat(), "level": alert.level,
                                                               "state": "resolved", "by": request.decided_by}]
    unit = session.get(Unit, request.unit_code)
    title = f"“{task.title}”经审核同意销号"
    session.add(Notice(idempotency_key=f"web-approval|{request.id}|{request.unit_code}", round_id=round_row.id,
                       alert_id=alerts[0].id if alerts else None, rule="web.approval", subject_type="task",
                       subject=task.code, period=task.deadline.isoformat() if task.deadline else "", kind="resolved",
                       level=None, recipient_unit=request.unit_code, title=title,
                       facts={"subject_name": task.title, "request": request.id, "comment": request.decision_comment},
                       created_at=now))
    if unit is None or not unit.emails:
        return len(alerts), 0
    local = now.astimezone(SHANGHAI)
    text = "\n".join([
        f"{unit.name}：", "",
        f"贵单位 {request.created_at.astimezone(SHANGHAI):%Y-%m-%d} 提出的销号申请（#{request.id}）已于 "
        f"{local:%Y-%m-%d %H:%M} 经办公室审核同意。", "",
        f"任务：{task.title}（{task.code}）", f"办理意见：{request.decision_comment or '同意销号。'}", "",
        "该事项的预警已销号，此后不再督办。",
    ])
    messages = []
    for address in unit.emails:
        try:
            messages.append(build_email(idempotency_key=f"web-approval|{request.id}|{address}", mail_from=mail_from(),
                                        to_address=address, to_name=unit.name, subject=f"【销号通知】{task.title}",
                                        text=text, html=None, at=now, recipient_unit=unit.code, round_id=round_row.id))
        except MessageError:
            continue
    return len(alerts), enqueue(session, messages, now=now)


def open_requests(session: Session, limit: int = 200) -> list[UnitRequest]:
    return list(session.scalars(select(UnitRequest).where(UnitRequest.state == "open").order_by(UnitRequest.id).limit(limit)))


def requests_of(session: Session, *, unit_code: str | None = None, task_code: str | None = None,
                limit: int = 200) -> list[UnitRequest]:
    query = select(UnitRequest).order_by(UnitRequest.id.desc()).limit(limit)
    if unit_code is not None:
        query = query.where(UnitRequest.unit_code == unit_code)
    if task_code is not None:
        query = query.where(UnitRequest.task_code == task_code)
    return list(session.scalars(query))


def attachments_of(session: Session, request_ids: list[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = {}
    if not request_ids:
        return found
    for row in session.scalars(select(Attachment).where(Attachment.request_id.in_(request_ids)).order_by(Attachment.id)):
        found.setdefault(row.request_id, []).append(row)
    return found
