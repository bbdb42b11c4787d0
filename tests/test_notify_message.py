"""Message building: multipart UTF-8 e-mails, one per address, headers that cannot be injected."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from duban.notifiers.digest import Recipient
from duban.notifiers.message import (
    MessageError,
    build_dingtalk_message,
    build_email,
    build_email_messages,
    validate_address,
)
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import ROUND_AT, sample_digest, sample_item

TEMPLATES = Path(__file__).resolve().parents[1] / "rules" / "templates"
MAIL_FROM = "鹿城区“十百千”工作专班 <zhuanban@lucheng.example.cn>"


@pytest.fixture(scope="module")
def renderer() -> DigestRenderer:
    return DigestRenderer(TEMPLATES)


def parse(payload: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(payload, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_digest_becomes_multipart_alternative_text_then_html_in_utf8(renderer: DigestRenderer) -> None:
    digest = sample_digest()
    [message] = build_email_messages(digest, renderer.render(digest), mail_from=MAIL_FROM)
    parsed = parse(message.payload)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert "服务业投资占全区固定资产投资比重低于2/3" in parts[0].get_content()
    assert "<table" in parts[1].get_content()
    assert parsed["Subject"] == "【鹿城区服务业高质量发展“十百千”工程建设工作专班】2023年7月月调度：3项待办（红灯1项）"
    assert parsed["To"].addresses[0].display_name == "区发改局"
    assert parsed["From"].addresses[0].display_name == "鹿城区“十百千”工作专班"
    assert parsed["Date"].datetime == ROUND_AT
    assert message.payload.isascii()  # encoded words and base64: safe through any relay


def test_a_unit_with_two_addresses_gets_one_message_addressed_to_both(renderer: DigestRenderer) -> None:
    """One message (one Message-ID, To: both), delivered per address so each retries on its own."""
    digest = sample_digest(
        recipient=Recipient("drc", "区发改局", "department", ("a@lucheng.example.cn", "b@lucheng.example.cn"))
    )
    rendered = renderer.render(digest)
    first = build_email_messages(digest, rendered, mail_from=MAIL_FROM)
    again = build_email_messages(digest, rendered, mail_from=MAIL_FROM)
    assert [m.address for m in first] == ["a@lucheng.example.cn", "b@lucheng.example.cn"]
    assert len({m.idempotency_key for m in first}) == 2
    assert len({m.message_id for m in first}) == 1
    assert [m.message_id for m in first] == [m.message_id for m in again]
    assert first[0].payload == first[1].payload
    parsed = parse(first[0].payload)
    assert parsed["Message-ID"] == first[0].message_id
    assert [a.addr_spec for a in parsed["To"].addresses] == ["a@lucheng.example.cn", "b@lucheng.example.cn"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "2023年7月\r\nBcc: victim@example.com"),
        ("to_name", "区发改局\nBcc: victim@example.com"),
        ("to_address", "a@example.cn\r\nBcc: victim@example.com"),
        ("mail_from", "专班 <z@example.cn>\nBcc: victim@example.com"),
    ],
)
def test_header_injection_with_cr_or_lf_is_rejected(field: str, value: str) -> None:
    arguments = {
        "idempotency_key": "k",
        "mail_from": MAIL_FROM,
        "to_address": "a@example.cn",
        "to_name": "区发改局",
        "subject": "主题",
        "text": "正文",
        "html": None,
        "at": ROUND_AT,
    }
    arguments[field] = value
    with pytest.raises(MessageError, match="换行或控制字符"):
        build_email(**arguments)  # type: ignore[arg-type]


def test_a_rendered_subject_is_one_line_even_if_a_title_contains_a_newline(renderer: DigestRenderer) -> None:
    digest = sample_digest(round_title="2023年7月\r\nBcc: x@example.com")
    rendered = renderer.render(digest)
    assert "\n" not in rendered.subject and "\r" not in rendered.subject


@pytest.mark.parametrize(
    "address",
    ["no-at-sign", "two@@example.cn", "a b@example.cn", "张三@example.cn", "a@localhost", "a@-bad-.cn", ".a@example.cn"],
)
def test_malformed_or_non_ascii_local_part_addresses_are_rejected(address: str) -> None:
    with pytest.raises(MessageError):
        validate_address(address)


def test_internationalised_domains_are_sent_in_punycode() -> None:
    assert validate_address("fgj@鹿城.中国") == "fgj@xn--uisz85n.xn--fiqs8s"
    assert validate_address(" Fgj@Lucheng.Example.CN ") == "Fgj@lucheng.example.cn"


def test_dingtalk_message_is_markdown_json(renderer: DigestRenderer) -> None:
    digest = sample_digest(items=(sample_item(),))
    message = build_dingtalk_message(digest, renderer.render(digest))
    body = json.loads(message.payload)
    assert body["msgtype"] == "markdown"
    assert "服务业投资占全区固定资产投资比重低于2/3" in body["markdown"]["text"]
    assert body["markdown"]["title"].startswith("【鹿城区")
    assert message.channel == "dingtalk"


def test_a_long_chinese_unit_name_with_ascii_quotes_comes_back_whole_in_the_to_header() -> None:
    import datetime as dt
    from email import message_from_bytes, policy

    from duban.notifiers.message import build_email

    name = '区服务业高质量发展"十百千"工程建设工作专班'
    message = build_email(idempotency_key="k", mail_from="工作专班 <duban@example.org>",
                          to_address="zb@lucheng.example.org", to_name=name, subject="测试", text="正文",
                          html=None, at=dt.datetime(2023, 7, 3, 1, tzinfo=dt.UTC))
    # Too long for one encoded-word (75 characters at most): split on whole characters. RFC 2047
    # decoders join adjacent encoded-words (email.header.decode_header here; mblaze and Perl in
    # test_mail_standards); Python's policy.default parser puts a space between the parts.
    from email.header import decode_header, make_header

    parsed = message_from_bytes(message.payload, policy=policy.compat32)
    assert str(make_header(decode_header(parsed["To"]))) == f"{name} <zb@lucheng.example.org>"
    assert all(len(word) <= 75 for word in parsed["To"].split())


@pytest.mark.parametrize("name", [
    '区服务业高质量发展"十百千"工程建设工作专班',
    '市服务业高质量发展"十百千"工程建设工作专班（办公室设在市发展改革委）',
    "湖州市服务业高质量发展“十百千”工程建设工作专班",
])
def test_the_working_groups_name_decodes_unchanged_from_a_to_with_several_addresses(name: str, tmp_path: Path) -> None:
    """A name split over encoded-words decodes without a stray space ("工程 建设工作专班"): by RFC 2047
    decoders (email.header, mblaze's mhdr) and by what duban itself shows (the demo's index.html)."""
    import datetime as dt
    import shutil
    import subprocess
    from email.header import decode_header, make_header

    from duban.app.simulate import _mail_label
    from duban.notifiers.message import decoded_mailboxes

    addresses = ["zhuanban@lucheng.example.org", "zhuanban-fgj@lucheng.example.org"]
    message = build_email(idempotency_key="k", mail_from="鹿城区“十百千”工作专班 <duban@example.org>",
                          to_address=addresses[0], to_name=name, subject="【鹿城区“十百千”工作专班】督办提醒",
                          text="正文", html=None, at=dt.datetime(2023, 7, 3, 1, tzinfo=dt.UTC), also_to=addresses)
    parsed = email.message_from_bytes(message.payload, policy=email.policy.compat32)
    raw = str(parsed["To"])
    assert all(len(line) <= 76 for line in message.payload.decode("ascii").split("\r\n")[:12])
    assert str(make_header(decode_header(raw))) == ", ".join(f"{name} <{a}>" for a in addresses)
    assert decoded_mailboxes(raw) == [(name, a) for a in addresses]
    path = tmp_path / "m.eml"
    path.write_bytes(message.payload)
    assert _mail_label(path) == f"{name}：【鹿城区“十百千”工作专班】督办提醒"
    if shutil.which("mhdr"):
        shown = subprocess.run(["mhdr", "-h", "to", "-d", str(path)], capture_output=True, text=True, check=True)
        assert shown.stdout.strip() == ", ".join(f"{name} <{a}>" for a in addresses)
