"""Accounts, sign-in and sessions: what `duban users` and the web's sign-in pages both call.

* Passwords (the office's) are hashed with scrypt (hashlib, n=2**14, r=8, p=1, 16-byte salt) and
  compared in constant time.
* A sign-in link carries `user.expiry.nonce.signature`: an HMAC-SHA256 over the rest with the
  database's own secret (`settings` row `web.secret`, made on first use). The nonce's SHA-256 is a
  row in `web_signin_links`: the link is spent by the confirming POST, so a mail scanner that
  fetches the GET spends nothing, and a replay finds the row used.
* A session is a random token in an HttpOnly, SameSite=Lax cookie; the database keeps its SHA-256,
  its CSRF token and its expiry. Several workers behind a proxy share nothing but the database.
* Failed logins are rows too: more than LOGIN_FAILURES_ALLOWED failures for one login or one
  address within LOGIN_WINDOW refuse further tries until the window has passed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from duban.notifiers.render import format_datetime_cn
from duban.store.models import Setting, Unit
from duban.store.web_models import ROLE_LABELS, ROLES, LoginAttempt, SignInLink, WebSession, WebUser

SESSION_LIFETIME = dt.timedelta(hours=12)
LINK_LIFETIME = dt.timedelta(days=7)
LOGIN_WINDOW = dt.timedelta(minutes=15)
LOGIN_FAILURES_ALLOWED = 5
SECRET_KEY = "web.secret"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class AccountError(ValueError):
    """A Chinese message the user can act on."""


@dataclass(frozen=True)
class Principal:
    """Who is signed in: what every page and every application function checks."""

    user_id: int
    login: str
    name: str
    role: str
    unit_code: str

    @property
    def is_office(self) -> bool:
        return self.role == "office"

    @property
    def is_unit(self) -> bool:
        return self.role == "unit"

    @property
    def can_read_all(self) -> bool:
        return self.role in ("office", "leader", "member")

    @property
    def display_name(self) -> str:
        return display_name(self.name, self.role, self.login)

    @property
    def label(self) -> str:
        """The header's name: 区发改局（责任单位）, 张三（专班成员）; 工作专班办公室 once, not 办公室（办公室）."""
        return role_label(self.display_name, self.role)

    def may_see_unit(self, unit_code: str) -> bool:
        return self.can_read_all or (self.is_unit and unit_code == self.unit_code)


OFFICE_NAME = "工作专班办公室"


def display_name(name: str, role: str, login: str = "") -> str:
    """An account as officials name it: its name; the office account, named only by its role (办公室) or
    not at all, as 工作专班办公室."""
    name = (name or "").strip()
    if role == "office" and name in ("", ROLE_LABELS["office"]):
        return OFFICE_NAME
    return name or login


def role_label(name: str, role: str) -> str:
    """The name with its role in brackets, unless the name already says it (工作专班办公室)."""
    label = ROLE_LABELS.get(role, role)
    return name if not label or label in name else f"{name}（{label}）"


def principal_of(user: WebUser) -> Principal:
    return Principal(user.id, user.login, user.name, user.role, user.unit_code)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- passwords -------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                                  p=int(p), dklen=len(bytes.fromhex(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.hex(), digest)


# --- accounts ------------------------------------------------------------------------------------


def add_user(session: Session, *, login: str, role: str, now: dt.datetime, name: str = "", unit_code: str = "",
             email: str = "", password: str | None = None) -> WebUser:
    login = login.strip()
    if not login or len(login) > 100 or any(ch.isspace() for ch in login):
        raise AccountError(f"账号“{login}”无效：不能为空、不能含空格，最长100个字符")
    if role not in ROLES:
        raise AccountError(f"角色“{role}”无效，可选：{'、'.join(f'{r}（{ROLE_LABELS[r]}）' for r in ROLES)}")
    if session.scalar(select(WebUser.id).where(WebUser.login == login)) is not None:
        raise AccountError(f"账号“{login}”已存在")
    if role == "unit":
        if not unit_code:
            raise AccountError("责任单位账号须指定所属单位（--unit）")
        if session.get(Unit, unit_code) is None:
            raise AccountError(f"没有找到单位“{unit_code}”；请先导入单位清单")
    elif unit_code:
        raise AccountError("只有责任单位账号才属于某个单位")
    if role == "office" and not password:
        raise AccountError("办公室账号须设置密码（--password）")
    if password is not None and len(password) < 10:
        raise AccountError("密码至少10个字符")
    user = WebUser(login=login, name=name or login, role=role, unit_code=unit_code, email=email.strip(),
                   password_hash=hash_password(password) if password else "", active=True, created_at=now)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, login: str) -> WebUser:
    user = session.scalar(select(WebUser).where(WebUser.login == login.strip()))
    if user is None:
        raise AccountError(f"没有账号“{login}”；可用 duban users list 查看")
    return user


def set_password(session: Session, login: str, password: str) -> WebUser:
    if len(password) < 10:
        raise AccountError("密码至少10个字符")
    user = find_user(session, login)
    user.password_hash = hash_password(password)
    return user


def deactivate(session: Session, login: str, now: dt.datetime) -> WebUser:
    user = find_user(session, login)
    user.active = False
    for row in session.scalars(select(WebSession).where(WebSession.user_id == user.id, WebSession.ended_at.is_(None))):
        row.ended_at = now
    return user


def unit_accounts(session: Session, now: dt.datetime) -> list[WebUser]:
    """One account per unit that has none yet (login = unit code, mail = the unit's first address)."""
    taken = set(session.scalars(select(WebUser.unit_code).where(WebUser.role == "unit")))
    made = []
    for unit in session.scalars(select(Unit).order_by(Unit.code)):
        if unit.code in taken or unit.kind == "working_group":
            continue
        login = unit.code
        if session.scalar(select(WebUser.id).where(WebUser.login == login)) is not None:
            continue
        made.append(add_user(session, login=login, role="unit", now=now, name=unit.name, unit_code=unit.code,
                             email=(unit.emails or [""])[0]))
    return made


# --- the database's secret and signed links --------------------------------------------------------


def _secret(session: Session, now: dt.datetime) -> bytes:
    row = session.get(Setting, SECRET_KEY)
    if row is None:
        row = Setting(key=SECRET_KEY, value=secrets.token_hex(32), updated_at=now)
        session.add(row)
        session.flush()
    return bytes.fromhex(row.value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode("ascii"), hashlib.sha256).digest())


def issue_link(session: Session, user: WebUser, now: dt.datetime, lifetime: dt.timedelta = LINK_LIFETIME) -> str:
    """A fresh one-time sign-in token for `user` (put it after /signin/ in a URL)."""
    if not user.active:
        raise AccountError(f"账号“{user.login}”已停用")
    expires = now + lifetime
    nonce = secrets.token_urlsafe(24)
    body = f"{user.id}.{int(expires.timestamp())}.{nonce}"
    session.add(SignInLink(nonce_hash=_sha(nonce), user_id=user.id, created_at=now, expires_at=expires))
    session.flush()
    return f"{body}.{_sign(_secret(session, now), body)}"


@dataclass(frozen=True)
class LinkCheck:
    user: WebUser | None
    problem: str  # "" when the link may be used


def check_link(session: Session, token: str, now: dt.datetime) -> LinkCheck:
    """Whether a sign-in token is genuine, unexpired and unspent; spends nothing."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return LinkCheck(None, "登录链接无效：请使用邮件中的完整链接")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(_sign(_secret(session, now), body), parts[3]):
        return LinkCheck(None, "登录链接无效：签名不符")
    row = session.get(SignInLink, _sha(parts[2]))
    if row is None or row.user_id != int(parts[0]):
        return LinkCheck(None, "登录链接无效：请使用邮件中的完整链接")
    if row.used_at is not None:
        return LinkCheck(None, "该登录链接已使用过，每个链接只能使用一次；请向办公室索取新链接")
    if row.expires_at <= now:
        return LinkCheck(None, f"登录链接已于{format_datetime_cn(row.expires_at)}过期")
    user = session.get(WebUser, row.user_id)
    if user is None or not user.active:
        return LinkCheck(None, "该账号已停用")
    return LinkCheck(user, "")


def spend_link(session: Session, token: str, now: dt.datetime, address: str) -> WebUser:
    """Check and spend a sign-in token (a conditional update: two POSTs cannot both win)."""
    from sqlalchemy import update

    checked = check_link(session, token, now)
    if checked.user is None:
        raise AccountError(checked.problem)
    spent = session.execute(
        update(SignInLink).where(SignInLink.nonce_hash == _sha(token.split(".")[2]), SignInLink.used_at.is_(None))
        .values(used_at=now, used_from=address[:64])
    )
    if getattr(spent, "rowcount", 0) != 1:
        raise AccountError("该登录链接已使用过，每个链接只能使用一次；请向办公室索取新链接")
    return checked.user


# --- sessions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSession:
    token: str  # goes in the cookie
    csrf: str
    expires_at: dt.datetime


def start_session(session: Session, user: WebUser, now: dt.datetime, address: str) -> NewSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME
    session.add(WebSession(token_hash=_sha(token), user_id=user.id, csrf=csrf, created_at=now, expires_at=expires,
                           address=address[:64]))
    session.flush()
    return NewSession(token, csrf, expires)


@dataclass(frozen=True)
class LiveSession:
    principal: Principal
    csrf: str


def resolve_session(session: Session, token: str | None, now: dt.datetime) -> LiveSession | None:
    if not token or len(token) > 200:
        return None
    row = session.get(WebSession, _sha(token))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    user = session.get(WebUser, row.user_id)
    if user is None or not user.active:
        return None
    return LiveSession(principal_of(user), row.csrf)


def end_session(session: Session, token: str | None, now: dt.datetime) -> None:
    if not token:
        return
    row = session.get(WebSession, _sha(token))
    if row is not None and row.ended_at is None:
        row.ended_at = now


# --- password login, rate-limited --------------------------------------------------------------------


def password_login(session: Session, login: str, password: str, now: dt.datetime,
                   address: str) -> tuple[WebUser | None, str]:
    """The user, or None and why. Never raises: the failed attempt must be committed to count."""
    keys = [f"login:{login.strip()[:100]}", f"addr:{address[:64]}"]
    since = now - LOGIN_WINDOW
    for key in keys:
        failures = session.scalar(select(func.count()).select_from(LoginAttempt)
                                  .where(LoginAttempt.key == key, LoginAttempt.at > since, LoginAttempt.ok.is_(False)))
        if (failures or 0) >= LOGIN_FAILURES_ALLOWED:
            return None, f"登录失败次数过多，请 {int(LOGIN_WINDOW.total_seconds() // 60)} 分钟后再试"
    user = session.scalar(select(WebUser).where(WebUser.login == login.strip()))
    ok = (user is not None and user.active and bool(user.password_hash)
          and check_password(password, user.password_hash))
    if not ok and user is None:
        check_password(password, hash_password("x" * 10))  # the same time whether or not the login exists
    for key in keys:
        session.add(LoginAttempt(key=key, at=now, ok=ok))
    session.flush()
    if not ok or user is None:
        return None, "账号或密码不正确"
    return user, ""
