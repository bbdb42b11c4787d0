"""The unit's personal links in its digests ("在线报送本月数据", "查看事项并反馈").

Each is a one-time sign-in link (duban.app.accounts) that lands on the page it names; the base URL is
DUBAN_WEB_URL. A unit without a web account (duban users units makes them) gets no links.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from duban.app.accounts import LINK_LIFETIME, issue_link
from duban.store.web_models import WebUser

T = TypeVar("T")
REPORT_LABEL = "在线报送本月数据"
TASKS_LABEL = "查看事项并反馈"


def web_base_url() -> str:
    return os.environ.get("DUBAN_WEB_URL", "").rstrip("/")


def personal_links(session: Session, unit_code: str, now: dt.datetime, base_url: str | None = None) -> dict[str, str]:
    base = web_base_url() if base_url is None else base_url.rstrip("/")
    if not base:
        return {}
    user = session.scalar(select(WebUser).where(WebUser.role == "unit", WebUser.unit_code == unit_code,
                                                WebUser.active.is_(True)).order_by(WebUser.id).limit(1))
    if user is None:
        return {}
    return {
        REPORT_LABEL: f"{base}/signin/{issue_link(session, user, now, LINK_LIFETIME)}?next=/unit/{unit_code}/report",
        TASKS_LABEL: f"{base}/signin/{issue_link(session, user, now, LINK_LIFETIME)}?next=/unit/{unit_code}",
    }


def attach_personal_links(session: Session, digests: list[T], now: dt.datetime) -> list[T]:
    """The round's digests, each with its unit's personal links in `Digest.links` (the notices'
    templates render them when present). Nothing changes without DUBAN_WEB_URL, or for a unit
    without a web account, or while `Digest` has no `links` field."""
    if not digests or not web_base_url() or not dataclasses.is_dataclass(digests[0]):
        return digests
    if "links" not in {f.name for f in dataclasses.fields(digests[0])}:
        return digests
    linked = []
    for digest in digests:
        code = getattr(getattr(digest, "recipient", None), "code", "")
        links = personal_links(session, code, now) if code else {}
        if links:
            current = dict(getattr(digest, "links", {}) or {})
            digest = dataclasses.replace(digest, links={**current, **links})  # type: ignore[type-var]
        linked.append(digest)
    return linked
