"""The unit's personal links in its digests ("在线报送本月数据", "查看事项并反馈").

Each is a one-time sign-in link (duban.app.accounts) that lands on the page it names; the base URL is
DUBAN_WEB_URL. A unit without a web account (duban users units makes them) gets no links.
"""

from __future__ import annotations

import datetime as dt
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from duban.app.accounts import LINK_LIFETIME, issue_link
from duban.store.web_models import WebUser

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
