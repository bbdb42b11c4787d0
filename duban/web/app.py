"""The web door (issue 13): Starlette, server-rendered jinja2, a little vendored htmx.

Every route is declared once in ROUTES with who may open it (`access`):

* public  — anyone (health check, sign-in pages, static files);
* signed  — anyone signed in;
* read    — the office, the working group's members and leaders (read-only, everything);
* office  — the office (办公室) only;
* own     — a unit officer on their own unit's pages (`{code}` in the path), and the read roles
            for reading (GET); a unit officer anywhere else gets 403.

Pages call duban.app (accounts, portal, requests, board, alerts, audit): no business logic here.
Sessions, CSRF tokens and login attempts live in the database; the process keeps no state.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from duban.app import accounts, audit, board, portal
from duban.app import alerts as alert_actions
from duban.app import requests as unit_requests
from duban.app.accounts import AccountError, LiveSession, Principal
from duban.app.portal import Forbidden, PortalError
from duban.engine.calendar import WorkingCalendar
from duban.engine.rules import RuleSet
from duban.notifiers.digest import KIND_LABELS as NOTICE_KIND_LABELS
from duban.notifiers.render import (
    figure_digits,
    format_datetime_cn,
    format_figure,
    goal_text,
    name_with_months,
    period_cn,
)
from duban.store.db import session_factory, transaction
from duban.store.models import Alert, Delivery, Indicator, Notice, Silence, Task, Unit
from duban.store.periods import SHANGHAI, local_date
from duban.store.web_models import (
    REQUEST_KIND_LABELS,
    REQUEST_STATE_LABELS,
    ROLE_LABELS,
    Attachment,
    AuditEntry,
    Submission,
    UnitRequest,
)
from duban.web.charts import line_chart

HERE = Path(__file__).parent
SESSION_COOKIE = "duban_session"
PRE_COOKIE = "duban_pre"  # double-submit token for the forms shown before sign-in
MAX_FORM_BYTES = 12 * 1024 * 1024
# A unit's cached page is rendered again after this long even when no version moved (a restored
# backup, a change made behind the application's back).
UNIT_PAGE_SECONDS = 60.0


@dataclass
class WebConfig:
    engine: Engine
    rule_set_loader: Callable[[], RuleSet]
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    base_url: str = ""
    secure_cookies: bool = False
    trust_proxy: bool = False
    refresh_on_submit: bool = True
    reports_dir: Path | None = None  # the published 专报/通报 files (DUBAN_REPORTS_DIR), served at /reports/
    _rule_set: RuleSet | None = field(default=None, repr=False)
    _calendar: WorkingCalendar | None = field(default=None, repr=False)
    _reader: Engine | None = field(default=None, repr=False)

    @property
    def reader(self) -> Engine:
        """The engine pages read with. The store's SQLite engine opens every transaction with BEGIN
        IMMEDIATE (the writers' lock), which would queue every page view behind every other one and
        behind any import; reads go through a second engine in autocommit mode with `query_only`."""
        if self._reader is None:
            self._reader = read_only_engine(self.engine)
        return self._reader

    @property
    def rule_set(self) -> RuleSet:
        if self._rule_set is None:
            self._rule_set = self.rule_set_loader()
        return self._rule_set

    @property
    def calendar(self) -> WorkingCalendar:
        if self._calendar is None:
            self._calendar = WorkingCalendar.load(self.rule_set.settings.calendar)
        return self._calendar


def read_only_engine(engine: Engine) -> Engine:
    if engine.dialect.name != "sqlite":
        return engine
    from sqlalchemy import create_engine, event

    from duban.store.db import sqlite_busy_timeout

    timeout = sqlite_busy_timeout()
    reader = create_engine(engine.url, connect_args={"isolation_level": None, "timeout": timeout})

    @event.listens_for(reader, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    return reader


# --- rendering ---------------------------------------------------------------------------------------


RULE_KIND_LABELS = {"threshold": "指标门槛", "pace": "序时进度", "deadline": "时限", "report_due": "按时报送",
                    "praise": "表扬", "milestone": "节点", "forecast": "预测"}


def _facts_period(facts: dict[str, Any], period: str) -> str:
    """The month a notice's or an alert's figure runs to, for `name_with_months`: its value period,
    else the months ended of its year (a pace light), else its own period."""
    found = str(facts.get("value_period") or "")
    base = period.split("/")[0]
    months = facts.get("months_ended") or (facts.get("forecast") or {}).get("months")
    if not found and months and len(base) == 4 and base.isdigit():
        found = f"{base}-{int(months):02d}"
    return found or base


def alert_title(item: Alert | Notice) -> str:
    """An alert's or a notice's title with "1—N月" made the months its figure covers."""
    return name_with_months(item.title, _facts_period(item.facts or {}, item.period))


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = lambda v: format_datetime_cn(v) if v else "—"
    env.filters["day"] = audit.chinese_date
    env.filters["with_months"] = name_with_months
    env.filters["goal_text"] = goal_text  # a 主要目标 without the 时间节点 it only repeats ("2023全年" → "")
    env.filters["period_cn"] = period_cn
    env.filters["alert_title"] = alert_title
    env.globals["task_text"] = board.task_text
    env.filters["figure"] = format_figure  # 1.5亿元, 66.67%: a figure with its measure, as the notices write it
    env.filters["month"] = lambda m: f"{m[:4]}年{int(m[5:7])}月" if len(m) == 7 and m[4] == "-" and m[5:].isdigit() else m
    env.filters["num"] = lambda v: "—" if v is None else (
        f"{v:,.{figure_digits(v)}f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v))
    env.globals.update(LEVEL_LABELS=board.LEVEL_LABELS, SUBJECT_LABELS=board.SUBJECT_LABELS, ROLE_LABELS=ROLE_LABELS,
                       REQUEST_KIND_LABELS=REQUEST_KIND_LABELS, REQUEST_STATE_LABELS=REQUEST_STATE_LABELS,
                       ACTION_LABELS=audit.ACTION_LABELS, task_done=unit_requests.task_done,
                       RULE_KIND_LABELS=RULE_KIND_LABELS, NOTICE_KIND_LABELS=NOTICE_KIND_LABELS)
    return env


ENV = _environment()


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    live: LiveSession | None = getattr(request.state, "live", None)
    page = ENV.get_template(template).render(request=request, me=live.principal if live else None,
                                         csrf=live.csrf if live else "", **context)
    return HTMLResponse(page, status_code=status_code)


# --- request plumbing -----------------------------------------------------------------------------------


def config(request: Request) -> WebConfig:
    return request.app.state.config


def now(request: Request) -> dt.datetime:
    return config(request).clock()


def client_address(request: Request) -> str:
    if config(request).trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.client.host if request.client else ""


def db(request: Request) -> Session:
    """A session for reading: on SQLite it takes no write lock (see `WebConfig.reader`)."""
    return session_factory(config(request).reader)()


class Denied(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _live(request: Request) -> LiveSession | None:
    if not hasattr(request.state, "live"):
        token = request.cookies.get(SESSION_COOKIE)
        with db(request) as session:
            request.state.live = accounts.resolve_session(session, token, now(request)) if token else None
    return request.state.live


def who(request: Request) -> Principal:
    live = _live(request)
    if live is None:
        raise Denied(401, "请先登录")
    return live.principal


async def form_of(request: Request) -> FormData:
    """The posted form, with the CSRF token checked (session token, or the pre-sign-in cookie)."""
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_FORM_BYTES:
        raise Denied(413, f"提交的内容过大（{length // 1024 // 1024} MB），上限 {MAX_FORM_BYTES // 1024 // 1024} MB")
    form = await request.form(max_part_size=MAX_FORM_BYTES)
    sent = str(form.get("csrf") or "")
    live = _live(request)
    expected = live.csrf if live else request.cookies.get(PRE_COOKIE, "")
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        raise Denied(403, "表单已失效（缺少或不符的校验码），请刷新页面后重新提交")
    return form


def pre_token(request: Request, response: Response | None = None) -> str:
    token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    request.state.pre = token
    return token


def _set_pre(request: Request, response: Response) -> Response:
    token = getattr(request.state, "pre", None)
    if token and request.cookies.get(PRE_COOKIE) != token:
        response.set_cookie(PRE_COOKIE, token, httponly=True, samesite="strict", secure=config(request).secure_cookies,
                            path="/")
    return response


def text_of(form: FormData, name: str, limit: int = 4000) -> str:
    value = form.get(name)
    return str(value)[:limit] if isinstance(value, str) else ""


async def read_uploads(form: FormData, name: str) -> list[unit_requests.Upload]:
    found = []
    for item in form.getlist(name):
        if isinstance(item, UploadFile) and item.filename:
            found.append(unit_requests.Upload(item.filename, await item.read(unit_requests.ATTACHMENT_MAX_BYTES + 1)))
    return found


def unit_name(session: Session, code: str) -> str:
    unit = session.get(Unit, code)
    if unit is None:
        raise Denied(404, f"没有单位“{code}”")
    return unit.name


def own_unit(request: Request, write: bool = False) -> tuple[Principal, str]:
    """The unit of the path, if the principal may open it (and, for `write`, act for it)."""
    me = who(request)
    code = request.path_params["code"]
    if me.is_unit and me.unit_code != code:
        raise Denied(403, "无权访问其他单位的页面")
    if write and not (me.is_unit and me.unit_code == code):
        raise Denied(403, "只有本单位的填报人员可以在此提交")
    if not me.may_see_unit(code):
        raise Denied(403, "无权访问")
    return me, code


def require(request: Request, access: str) -> Principal | None:
    if access == "public":
        return None
    me = who(request)
    if access == "read" and not me.can_read_all:
        raise Denied(403, "无权访问：该页面仅供办公室和工作专班查看")
    if access == "office" and not me.is_office:
        raise Denied(403, "无权访问：该操作仅限办公室")
    return me


# --- routes ---------------------------------------------------------------------------------------


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    path: str
    methods: tuple[str, ...]
    access: str  # public signed read office own
    handler: Handler
    name: str


ROUTES: list[RouteSpec] = []


def route(path: str, access: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            try:
                if access != "own":
                    require(request, access)
                return await handler(request)
            except Denied as denied:
                return _denied(request, denied)
            except Forbidden as forbidden:
                return _denied(request, Denied(403, str(forbidden)))
        ROUTES.append(RouteSpec(path, methods, access, guarded, handler.__name__))
        return handler
    return register


def _denied(request: Request, denied: Denied) -> Response:
    if denied.status == 401 and request.method == "GET" and not request.url.path.startswith("/attachment"):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return render(request, "error.html.j2", status_code=denied.status, message=denied.message, status=denied.status)


@route("/healthz", "public")
async def healthz(request: Request) -> Response:
    from duban.store.db import ping

    ping(config(request).engine)
    return PlainTextResponse("ok")


@route("/", "public")
async def home(request: Request) -> Response:
    live = _live(request)
    if live is None:
        return RedirectResponse("/login", status_code=303)
    me = live.principal
    if me.is_unit:
        return RedirectResponse(f"/unit/{me.unit_code}", status_code=303)
    return RedirectResponse("/office" if me.is_office else "/board", status_code=303)


@route("/login", "public")
async def login_page(request: Request) -> Response:
    token = pre_token(request)
    return _set_pre(request, render(request, "login.html.j2", pre=token, error="", next=_safe_next(request)))


def _safe_next(request: Request, value: str | None = None) -> str:
    target = value if value is not None else request.query_params.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else ""


def _signed_in(request: Request, user: Any, target: str) -> Response:
    with transaction(config(request).engine) as session:
        started = accounts.start_session(session, session.merge(user), now(request), client_address(request))
    response = RedirectResponse(target or "/", status_code=303)
    response.set_cookie(SESSION_COOKIE, started.token, httponly=True, samesite="lax", secure=config(request).secure_cookies,
                        path="/", max_age=int(accounts.SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


@route("/login", "public", ("POST",))
async def login_submit(request: Request) -> Response:
    form = await form_of(request)
    login, password = text_of(form, "login", 100), text_of(form, "password", 200)
    address = client_address(request)
    with transaction(config(request).engine) as session:
        user, problem = accounts.password_login(session, login, password, now(request), address)
        if user is not None:
            audit.record(session, accounts.principal_of(user), "login", at=now(request), address=address,
                         object_type="user", object_id=user.id)
    if user is None:
        token = pre_token(request)
        return _set_pre(request, render(request, "login.html.j2", status_code=401, pre=token, error=problem,
                                        next=_safe_next(request, text_of(form, "next"))))
    return _signed_in(request, user, _safe_next(request, text_of(form, "next")))


@route("/signin/{token}", "public")
async def signin_page(request: Request) -> Response:
    """Shows who the link is for and a button; the GET spends nothing (mail scanners prefetch links)."""
    with transaction(config(request).engine) as session:
        checked = accounts.check_link(session, request.path_params["token"], now(request))
        name = accounts.display_name(checked.user.name, checked.user.role, checked.user.login) if checked.user else ""
        unit = unit_name(session, checked.user.unit_code) if checked.user and checked.user.unit_code else ""
    token = pre_token(request)
    status = 200 if checked.user else 410
    return _set_pre(request, render(request, "signin.html.j2", status_code=status, pre=token, problem=checked.problem,
                                    name=name, unit=unit, token=request.path_params["token"], next=_safe_next(request)))


@route("/signin/{token}", "public", ("POST",))
async def signin_confirm(request: Request) -> Response:
    form = await form_of(request)
    address = client_address(request)
    try:
        with transaction(config(request).engine) as session:
            user = accounts.spend_link(session, request.path_params["token"], now(request), address)
            audit.record(session, accounts.principal_of(user), "signin_link", at=now(request), address=address,
                         object_type="user", object_id=user.id)
    except AccountError as exc:
        token = pre_token(request)
        return _set_pre(request, render(request, "signin.html.j2", status_code=410, pre=token, problem=str(exc),
                                        name="", unit="", token="", next=""))
    # A digest's link names the page it is for ("在线报送本月数据" → the form); only local paths are followed.
    return _signed_in(request, user, _safe_next(request, text_of(form, "next", 300)))


@route("/logout", "signed", ("POST",))
async def logout(request: Request) -> Response:
    await form_of(request)
    with transaction(config(request).engine) as session:
        accounts.end_session(session, request.cookies.get(SESSION_COOKIE), now(request))
        audit.record(session, who(request), "logout", at=now(request), address=client_address(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- the board ------------------------------------------------------------------------------------


def _filter(request: Request) -> board.BoardFilter:
    q = request.query_params
    kind = q.get("kind", "") if q.get("kind", "") in board.SUBJECT_LABELS else ""
    level = q.get("level", "") if q.get("level", "") in board.LEVEL_LABELS else ""
    return board.BoardFilter(unit=q.get("unit", "")[:64], kind=kind, level=level, q=q.get("q", "")[:100])


class PageCache:
    """Rendered board pages keyed by the lights' version (a `settings` row every refresh changes), so
    every worker serves the same board and none serves a stale one. Bounded; not state: a lost
    entry is rendered again."""

    def __init__(self, size: int = 1024) -> None:
        from collections import OrderedDict

        self.size = size
        self.entries: OrderedDict[tuple[Any, ...], tuple[float, str]] = OrderedDict()

    def get(self, key: tuple[Any, ...], max_age: float | None = None) -> str | None:
        import time

        found = self.entries.get(key)
        if found is None:
            return None
        if max_age is not None and time.monotonic() - found[0] > max_age:
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return found[1]

    def put(self, key: tuple[Any, ...], value: str) -> None:
        import time

        self.entries[key] = (time.monotonic(), value)
        self.entries.move_to_end(key)
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)


@route("/board", "read")
async def board_view(request: Request) -> Response:
    filt = _filter(request)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    partial = bool(request.headers.get("hx-request"))
    cache: PageCache = request.app.state.pages
    at = now(request)
    with db(request) as session:
        key = (board.version(session), filt, page, partial, at.date())
        body = cache.get(key)
        if body is None:
            # The unit is asked for by name (a code still works); `filt.unit` becomes its code.
            unit_code, unit_label, unit_problem = board.resolve_unit(session, filt.unit)
            typed, filt = filt.unit, board.BoardFilter(unit_code, filt.kind, filt.level, filt.q)
            total, rows = (0, []) if unit_problem else board.board_page(session, filt, page=page)
            totals = board.level_totals(session, filt)
            month, ranks = board.ranking(session, at, limit=10)
            units = dict(session.execute(select(Unit.code, Unit.name).where(Unit.code.in_({r.lead_unit for r in rows}))).all())
            tasks = board.task_texts(session, (r.subject for r in rows if r.subject_type == "task"))
            choices = [] if partial else board.unit_choices(session)
            updated = session.scalar(select(func.max(board.BoardLight.updated_at)))
            body = ENV.get_template("board_rows.html.j2" if partial else "board_main.html.j2").render(
                filt=filt, total=total, rows=rows, totals=totals, month=month, ranks=ranks, units=units, page=page,
                pages=max(1, (total + 49) // 50), updated=updated, tasks=tasks, choices=choices,
                picker_select=len(choices) <= board.PICKER_SELECT_MAX, unit_label=unit_label,
                unit_text=unit_label or typed, unit_problem=unit_problem, today=local_date(at))
            cache.put(key, body)
    if partial:
        return HTMLResponse(body)
    return render(request, "page.html.j2", title="挂图作战", body=Markup(body))


@route("/board/ranking", "read")
async def ranking_view(request: Request) -> Response:
    with db(request) as session:
        month, ranks = board.ranking(session, now(request), limit=500)
    return render(request, "ranking.html.j2", month=month, ranks=ranks)


@route("/board/subject/{kind}/{subject}", "read")
async def subject_view(request: Request) -> Response:
    kind, subject = request.path_params["kind"], request.path_params["subject"]
    if kind not in ("indicator", "project", "project_list", "task"):
        raise Denied(404, "没有这类对象")
    code = subject.split("@", 1)[0]
    with db(request) as session:
        lights = board.subject_lights(session, kind, code)
        name = lights[0].subject_name if lights else code
        chart = ""
        if kind == "indicator":
            indicator = session.get(Indicator, code)
            if indicator is None and not lights:
                raise Denied(404, f"没有指标“{code}”")
            points = board.series(session, code, subject.split("@", 1)[1] if "@" in subject else "")
            # "1—N月" made the months of the newest figure, as the lights and notices write it.
            name = name_with_months(indicator.name, points[-1][0] if points else "") if indicator else name
            if points:
                chart = line_chart(points, measure=indicator.measure if indicator else "")
        alerts = list(session.scalars(select(Alert).where(Alert.subject_type == kind,
                                                          (Alert.subject == code) | Alert.subject.startswith(f"{code}@"))
                                      .order_by(Alert.first_seen.desc()).limit(50)))
        notices = list(session.scalars(select(Notice).where(Notice.subject_type == kind,
                                                            (Notice.subject == code) | Notice.subject.startswith(f"{code}@"))
                                       .order_by(Notice.id.desc()).limit(50)))
        replies = unit_requests.requests_of(session, task_code=code) if kind == "task" else []
        task = session.get(Task, code) if kind == "task" else None
        texts = board.task_texts(session, [code]) if task is not None else {}
        wanted = {n.recipient_unit for n in notices} | {r.unit_code for r in replies} | set(task.unit_codes if task else ())
        unit_names = dict(session.execute(select(Unit.code, Unit.name).where(Unit.code.in_(wanted))).all()) if wanted else {}
    return render(request, "subject.html.j2", kind=kind, subject=subject, today=local_date(now(request)), name=name, lights=lights, chart=chart,
                  alerts=alerts, notices=notices, replies=replies, task=task, unit_names=unit_names, texts=texts)


# --- a unit's pages -----------------------------------------------------------------------------------


@route("/unit/{code}", "own")
async def unit_view(request: Request) -> Response:
    me, code = own_unit(request)
    cfg = config(request)
    at = now(request)
    cache: PageCache = request.app.state.pages
    with db(request) as session:
        # A unit's page changes with the lights (board.version), with every audited step (submissions,
        # requests, decisions, web imports), with any import (CLI ones too) and with the day.
        key = ("unit", code, me.is_unit, at.date(), *board.store_version(session))
        cached = cache.get(key, max_age=UNIT_PAGE_SECONDS)
        if cached is None:
            name = unit_name(session, code)
            owed = portal.owed_figures(session, cfg.rule_set, cfg.calendar, code, at)
            lights = board.unit_lights(session, code, limit=100)
            tasks = unit_requests.unit_tasks(session, code)
            reqs = unit_requests.requests_of(session, unit_code=code, limit=30)
            receipts = list(session.scalars(select(Submission).where(Submission.unit_code == code)
                                            .order_by(Submission.id.desc()).limit(10)))
            light = board.unit_light(session, code)
            texts = board.task_texts(session, [r.subject for r in lights if r.subject_type == "task"]
                                     + [t.code for t in tasks] + [r.task_code for r in reqs])
            body = ENV.get_template("unit_main.html.j2").render(
                me=me, code=code, name=name, owed=owed, lights=lights, tasks=tasks, reqs=reqs, receipts=receipts,
                light=light, today=local_date(at), texts=texts)
            cached = f"{name}\x00{body}"
            cache.put(key, cached)
    name, _, body = cached.partition("\x00")
    return render(request, "page.html.j2", title=name, body=Markup(body))


@route("/unit/{code}/report", "own")
async def report_form(request: Request) -> Response:
    me, code = own_unit(request)
    cfg = config(request)
    with db(request) as session:
        name = unit_name(session, code)
        owed = portal.owed_figures(session, cfg.rule_set, cfg.calendar, code, now(request))
        history = portal.revisions(session, code, limit=20)
    return render(request, "report.html.j2", code=code, name=name, owed=owed, errors={}, problems=[], values={}, notes={},
                  history=history, today=local_date(now(request)), can_submit=me.is_unit)


@route("/unit/{code}/report", "own", ("POST",))
async def report_submit(request: Request) -> Response:
    me, code = own_unit(request, write=True)
    form = await form_of(request)
    cfg = config(request)
    at = now(request)
    with db(request) as session:
        name = unit_name(session, code)
        owed = portal.owed_figures(session, cfg.rule_set, cfg.calendar, code, at)
    values = {f.key: text_of(form, f"v:{f.key}", 64) for f in owed}
    explanations = {f.key: text_of(form, f"note:{f.key}", 500) for f in owed if text_of(form, f"note:{f.key}", 500).strip()}
    entries = [(f.indicator, f.period, f.unit_code, values[f.key]) for f in owed]
    outcome = portal.submit_form(cfg.engine, me, code, entries, now=at, address=client_address(request),
                                 explanations=explanations)
    if not outcome.ok or outcome.submission is None:
        with db(request) as session:
            history = portal.revisions(session, code, limit=20)
        return render(request, "report.html.j2", status_code=422, code=code, name=name, owed=owed,
                      errors=outcome.field_problems, problems=outcome.problem_lines, values=values, notes=explanations, history=history,
                      today=local_date(at), can_submit=True)
    _refresh(request, outcome.touched)
    return RedirectResponse(f"/unit/{code}/receipt/{outcome.submission.number}", status_code=303)


def _refresh(request: Request, touched: set[str]) -> None:
    cfg = config(request)
    if cfg.refresh_on_submit and touched:
        board.refresh_indicators(cfg.engine, cfg.rule_set, now(request), touched)


@route("/unit/{code}/upload", "own", ("POST",))
async def report_upload(request: Request) -> Response:
    me, code = own_unit(request, write=True)
    form = await form_of(request)
    cfg = config(request)
    at = now(request)
    sheet = form.get("sheet")
    if not isinstance(sheet, UploadFile) or not sheet.filename:
        problems = ["请选择要上传的 .csv 或 .xlsx 文件"]
        outcome = None
    else:
        data = await sheet.read(portal.UPLOAD_MAX_BYTES + 1)
        outcome = portal.submit_upload(cfg.engine, me, code, sheet.filename, data, now=at,
                                       address=client_address(request), note=text_of(form, "note", 500))
        problems = outcome.problem_lines
    if outcome is None or not outcome.ok or outcome.submission is None:
        with db(request) as session:
            name = unit_name(session, code)
            owed = portal.owed_figures(session, cfg.rule_set, cfg.calendar, code, at)
            history = portal.revisions(session, code, limit=20)
        return render(request, "report.html.j2", status_code=422, code=code, name=name, owed=owed, errors={},
                      problems=problems, values={}, notes={}, history=history, today=local_date(at), can_submit=True)
    _refresh(request, outcome.touched)
    return RedirectResponse(f"/unit/{code}/receipt/{outcome.submission.number}", status_code=303)


@route("/unit/{code}/receipt/{number}", "own")
async def receipt_view(request: Request) -> Response:
    _, code = own_unit(request)
    with db(request) as session:
        name = unit_name(session, code)
        receipt = session.scalar(select(Submission).where(Submission.number == request.path_params["number"],
                                                          Submission.unit_code == code))
        if receipt is None:
            raise Denied(404, "没有这份回执")
        names = dict(session.execute(select(Indicator.code, Indicator.name)).all()) if len(receipt.values) < 500 else {}
        submitter = portal.submitter_name(session, receipt.submitted_by)
    return render(request, "receipt.html.j2", code=code, name=name, receipt=receipt, names=names,
                  submitter=submitter)


@route("/unit/{code}/task/{task}", "own")
async def task_view(request: Request) -> Response:
    me, code = own_unit(request)
    with db(request) as session:
        name = unit_name(session, code)
        task = unit_requests.task_of_unit(session, me, code, request.path_params["task"])
        reqs = unit_requests.requests_of(session, task_code=task.code)
        files = unit_requests.attachments_of(session, [r.id for r in reqs])
        alerts = list(session.scalars(select(Alert).where(Alert.subject_type == "task", Alert.subject == task.code)
                                      .order_by(Alert.first_seen.desc())))
    return render(request, "task.html.j2", code=code, name=name, task=task, reqs=reqs, files=files, alerts=alerts,
                  error="", can_submit=me.is_unit, today=local_date(now(request)))


@route("/unit/{code}/request/{request:int}", "own")
async def request_view(request: Request) -> Response:
    """One request and its 留痕: every state change with who, when and why, from the audit rows."""
    _, code = own_unit(request)
    with db(request) as session:
        name = unit_name(session, code)
        req = session.get(UnitRequest, request.path_params["request"])
        if req is None or req.unit_code != code:
            raise Denied(404, "没有这项申请")
        task = session.get(Task, req.task_code)
        files = unit_requests.attachments_of(session, [req.id]).get(req.id, [])
        steps = audit.request_history(session, req)
    return render(request, "request.html.j2", code=code, name=name, req=req, task=task, files=files, steps=steps)


@route("/unit/{code}/task/{task}", "own", ("POST",))
async def task_post(request: Request) -> Response:
    me, code = own_unit(request, write=True)
    form = await form_of(request)
    kind = text_of(form, "kind", 10)
    new_deadline = None
    if kind == "extend":
        try:
            new_deadline = dt.date.fromisoformat(text_of(form, "new_deadline", 10))
        except ValueError:
            new_deadline = None
    error = ""
    uploads = await read_uploads(form, "files")
    try:
        with transaction(config(request).engine) as session:
            unit_requests.post_request(session, me, code, request.path_params["task"], kind, text_of(form, "text"),
                                       now=now(request), address=client_address(request), new_deadline=new_deadline,
                                       uploads=uploads)
    except Forbidden:
        raise
    except PortalError as exc:
        error = str(exc)
    if not error:
        return RedirectResponse(f"/unit/{code}/task/{request.path_params['task']}", status_code=303)
    with db(request) as session:
        name = unit_name(session, code)
        task = unit_requests.task_of_unit(session, me, code, request.path_params["task"])
        reqs = unit_requests.requests_of(session, task_code=task.code)
        files = unit_requests.attachments_of(session, [r.id for r in reqs])
    return render(request, "task.html.j2", status_code=422, code=code, name=name, task=task, reqs=reqs, files=files,
                  alerts=[], error=error, can_submit=True, today=local_date(now(request)))


@route("/attachment/{id:int}", "signed")
async def attachment_view(request: Request) -> Response:
    me = who(request)
    with db(request) as session:
        attachment = session.get(Attachment, request.path_params["id"])
        req = session.get(UnitRequest, attachment.request_id) if attachment else None
        if attachment is None or req is None:
            raise Denied(404, "没有这个附件")
        if not me.may_see_unit(req.unit_code):
            raise Denied(403, "无权查看其他单位的附件")
        data = unit_requests.attachment_bytes(attachment)
    from urllib.parse import quote

    # Served as a download, never inline: an uploaded file must not run in the portal's origin.
    return Response(data, media_type=attachment.content_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
        "X-Content-Type-Options": "nosniff"})


# --- the office -----------------------------------------------------------------------------------


@route("/office", "office")
async def office_view(request: Request) -> Response:
    cfg = config(request)
    at = now(request)
    with db(request) as session:
        missing = portal.not_reported(session, cfg.rule_set, cfg.calendar, at, limit=100)
        pending = unit_requests.open_requests(session)
        files = unit_requests.attachments_of(session, [r.id for r in pending])
        units = dict(session.execute(select(Unit.code, Unit.name)).all()) if pending else {}
        tasks = {t.code: t for t in session.scalars(select(Task).where(Task.code.in_({r.task_code for r in pending})))}
        recent = list(session.scalars(select(Submission).order_by(Submission.id.desc()).limit(10)))
        failed = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "failed")) or 0
    return render(request, "office.html.j2", missing=missing, pending=pending, files=files, units=units, tasks=tasks,
                  recent=recent, failed=failed, error=request.query_params.get("error", "")[:300])


@route("/office/request/{id:int}", "office", ("POST",))
async def decide_request(request: Request) -> Response:
    form = await form_of(request)
    decision = text_of(form, "decision", 10)
    try:
        with transaction(config(request).engine) as session:
            unit_requests.decide(session, who(request), request.path_params["id"], decision == "approve",
                                 text_of(form, "comment"), now=now(request), address=client_address(request))
    except PortalError as exc:
        return render(request, "error.html.j2", status_code=422, message=str(exc), status=422)
    return RedirectResponse("/office", status_code=303)


@route("/office/alerts", "office")
async def alerts_view(request: Request) -> Response:
    at = now(request)
    with db(request) as session:
        firing = list(session.scalars(select(Alert).where(Alert.state == "firing")
                                      .order_by(Alert.level, Alert.rule, Alert.subject).limit(500)))
        silences = list(session.scalars(select(Silence).where(Silence.until > at).order_by(Silence.id)))
        # Two units' alerts on one task group read alike: each row names its units and the task's measure.
        unit_names = dict(session.execute(select(Unit.code, Unit.name)).all())
        task_codes = sorted({a.subject for a in firing if a.subject_type == "task"})
        measures = dict(session.execute(select(Task.code, Task.measures).where(Task.code.in_(task_codes))).all()) \
            if task_codes else {}
    # Praise (通报表扬) is not a warning: listed apart, with nothing to acknowledge or silence.
    rows = [a for a in firing if a.kind != "praise"]
    praise = [a for a in firing if a.kind == "praise"]
    return render(request, "alerts.html.j2", rows=rows, praise=praise, silences=silences, now=at, error="",
                  unit_names=unit_names, measures=measures)


def _until(text: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise PortalError(f"日期格式不正确：“{text}”，应为 2023-08-01") from None
    return dt.datetime.combine(day, dt.time(9, 0), tzinfo=SHANGHAI)


@route("/office/alerts/{id:int}/ack", "office", ("POST",))
async def ack_alert(request: Request) -> Response:
    form = await form_of(request)
    me = who(request)
    try:
        with transaction(config(request).engine) as session:
            alert = session.get(Alert, request.path_params["id"])
            if alert is None:
                raise PortalError("没有这条告警")
            if alert.kind == "praise":
                raise PortalError("这是通报表扬，不是预警，无需确认")
            reason = text_of(form, "reason", 500).strip()
            if not reason:
                raise PortalError("请写明确认的理由")
            alert_actions.acknowledge(alert, until=_until(text_of(form, "until", 20)), by=me.login, now=now(request),
                                      reason=reason)
            audit.record(session, me, "ack", at=now(request), address=client_address(request), object_type="alert",
                         object_id=alert.id, reason=reason, until=text_of(form, "until", 20))
    except (PortalError, alert_actions.AlertActionError) as exc:
        return render(request, "error.html.j2", status_code=422, message=str(exc), status=422)
    return RedirectResponse("/office/alerts", status_code=303)


@route("/office/silence", "office", ("POST",))
async def silence_create(request: Request) -> Response:
    form = await form_of(request)
    me = who(request)
    try:
        reason = text_of(form, "reason", 500).strip()
        if not reason:
            raise PortalError("请写明静默的理由")
        with transaction(config(request).engine) as session:
            row = alert_actions.create_silence(
                session, rule=text_of(form, "rule", 200).strip(), subject=text_of(form, "subject", 64).strip(),
                unit=text_of(form, "unit", 64).strip(), until=_until(text_of(form, "until", 20)), by=me.login,
                reason=reason, now=now(request), known_rules=[r.id for r in config(request).rule_set.rules])
            audit.record(session, me, "silence", at=now(request), address=client_address(request),
                         object_type="silence", object_id=row.id, reason=reason, rule=row.rule, subject=row.subject,
                         unit=row.unit)
    except (PortalError, alert_actions.AlertActionError) as exc:
        return render(request, "error.html.j2", status_code=422, message=str(exc), status=422)
    return RedirectResponse("/office/alerts", status_code=303)


@route("/office/outbox", "office")
async def outbox_view(request: Request) -> Response:
    from duban.notifiers.outbox import outbox_status, unit_label, unit_names

    with db(request) as session:
        status = outbox_status(session, limit=300)
        recent = list(session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(30)))
        names = unit_names(session)
    # The unit by its name (its code in brackets, as `duban outbox` shows it), the status in Chinese.
    units = {d.recipient_unit: unit_label(d.recipient_unit, names) for d in recent}
    return render(request, "outbox.html.j2", status=status, recent=recent, units=units,
                  status_names={"pending": "待发送", "sending": "发送中", "sent": "已发送", "failed": "发送失败"})


@route("/office/outbox/{id:int}/retry", "office", ("POST",))
async def outbox_retry(request: Request) -> Response:
    from duban.notifiers.outbox import requeue

    await form_of(request)
    me = who(request)
    delivery_id = request.path_params["id"]
    # The one way back into the queue, the same as `duban outbox --retry ID`.
    with transaction(config(request).engine) as session:
        result = requeue(session, ids=[delivery_id], now=now(request))
        if result.requeued:
            audit.record(session, me, "retry", at=now(request), address=client_address(request),
                         object_type="delivery", object_id=delivery_id)
    if not result.requeued:
        return render(request, "error.html.j2", status_code=422, message="；".join(result.lines()), status=422)
    return RedirectResponse("/office/outbox", status_code=303)


@route("/office/import", "office")
async def import_view(request: Request) -> Response:
    return render(request, "import.html.j2", problems=[], summary=[])


@route("/office/import", "office", ("POST",))
async def import_run(request: Request) -> Response:
    import tempfile

    from duban.store.importer import import_paths

    form = await form_of(request)
    me = who(request)
    files = [item for item in form.getlist("files") if isinstance(item, UploadFile) and item.filename]
    if not files:
        return render(request, "import.html.j2", status_code=422, problems=["请选择要导入的 .csv 或 .xlsx 文件"], summary=[])
    with tempfile.TemporaryDirectory(prefix="duban-import-") as folder:
        paths = []
        for item in files:
            name = Path(item.filename or "file").name
            if not name.lower().endswith((".csv", ".xlsx")):
                return render(request, "import.html.j2", status_code=422, problems=[f"{name}: 只能导入 .csv 或 .xlsx 文件"],
                              summary=[])
            path = Path(folder) / name
            path.write_bytes(await item.read())
            paths.append(path)
        report = import_paths(config(request).engine, paths, now=now(request), imported_by=me.login)
        lines = [line.replace(folder + os.sep, "") for line in (report.problem_lines() if not report.ok else report.summary_lines())]
    if not report.ok:
        return render(request, "import.html.j2", status_code=422, problems=lines, summary=[])
    with transaction(config(request).engine) as session:
        audit.record(session, me, "import", at=now(request), address=client_address(request), object_type="import",
                     object_id=report.batch_id or "", files=[Path(p).name for p in report.files])
    cfg = config(request)
    board.refresh_all(cfg.engine, cfg.rule_set, now(request))
    return render(request, "import.html.j2", problems=[], summary=lines)


REPORT_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.(html|xlsx)")


def _report_title(stem: str, rule_set: RuleSet) -> str | None:
    """monthly-2023-09 → 2023年9月月度专报 (the programme's own name for the report); None if not a report."""
    from duban.notifiers.reports.periods import ReportPeriodError, report_label, report_period

    kind, _, code = stem.partition("-")
    try:
        return report_label(rule_set, kind, report_period(kind, code))
    except ReportPeriodError:
        return None


@route("/reports", "signed")
async def published_reports(request: Request) -> Response:
    """The published 专报/通报, newest first, each as a page and a workbook."""
    folder = config(request).reports_dir
    listed: list[tuple[str, str, bool]] = []
    if folder is not None and folder.is_dir():
        rule_set = config(request).rule_set
        for page in sorted(folder.glob("*.html"), key=lambda p: p.stat().st_mtime, reverse=True):
            title = _report_title(page.stem, rule_set) if REPORT_FILE.fullmatch(page.name) else None
            if title:
                listed.append((title, page.name, (folder / f"{page.stem}.xlsx").is_file()))
    return render(request, "reports.html.j2", reports=listed)


@route("/reports/{name}", "signed")
async def published_report(request: Request) -> Response:
    """A published 专报/通报 (`duban report` output in DUBAN_REPORTS_DIR): the link a digest carries.

    Reports go to every member unit, so anyone signed in may read them; nothing outside the folder
    and nothing but .html and .xlsx is ever served."""
    from starlette.responses import FileResponse

    folder = config(request).reports_dir
    name = request.path_params["name"]
    if folder is None or not REPORT_FILE.fullmatch(name) or not (folder / name).is_file():
        raise Denied(404, "该报告尚未发布（或已移走），请联系工作专班办公室")
    if name.endswith(".html"):
        return FileResponse(folder / name, media_type="text/html; charset=utf-8")
    return FileResponse(folder / name, filename=name,
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@route("/office/audit", "office")
async def audit_view(request: Request) -> Response:
    with db(request) as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(300)))
        lines = audit.describe(session, rows)
    return render(request, "audit.html.j2", lines=lines)


# --- the application ----------------------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "页面不存在", 405: "不支持该请求方式"}.get(status, "服务器内部错误")
    return render(request, "error.html.j2", status_code=status, message=message, status=status)


def create_app(cfg: WebConfig) -> Starlette:
    routes: list[Any] = [Route(spec.path, spec.handler, methods=list(spec.methods), name=f"{spec.name}_{'_'.join(spec.methods)}")
                         for spec in ROUTES]
    routes.append(Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"))
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found},
                    middleware=[Middleware(SecurityHeaders)])
    app.state.config = cfg
    app.state.pages = PageCache()

    return app


class SecurityHeaders:
    """Pure ASGI middleware: a strict CSP (no inline script, nothing from elsewhere), no framing, no sniffing,
    and no caching of pages that show a unit's data."""

    HEADERS = (
        (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                     b"script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = not scope["path"].startswith(("/static", "/healthz"))

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.HEADERS if n not in present]
                if private and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)
