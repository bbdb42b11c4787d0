"""Every demo message, and a message to every unit of both programmes, read back by strict
decoders nobody here wrote: mblaze's `mhdr -d` (Debian package mblaze, installed by `make` when
apt is available), Perl's Encode MIME-Header in STRICT_DECODE mode (each encoded-word decoded on
its own, so a character split across words shows), and exim's `${rfc2047d:…}` when exim is
installed (it leaves over-long encoded-words undecoded). The RFC 2047 limits are checked
directly: encoded-words of at most 75 characters, lines holding them at most 76."""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
import subprocess
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from click.testing import CliRunner

from duban.cli import main
from duban.notifiers.message import MAX_ENCODED_WORD, build_email

ROOT = Path(__file__).resolve().parents[1]
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
HEADERS = ("Subject", "From", "To")
PERL_STRICT = r"""
use Encode; binmode STDOUT, ':encoding(UTF-8)';
local $Encode::MIME::Header::STRICT_DECODE = 1;
local $/ = "\0";
while (my $h = <STDIN>) { chomp $h; print decode('MIME-Header', $h), "\0"; }
"""


def _perl_ok() -> bool:
    perl = shutil.which("perl")
    return bool(perl) and subprocess.run([perl, "-MEncode::MIME::Header", "-e", "1"], capture_output=True).returncode == 0


DECODERS = [name for name, present in (("mblaze", bool(shutil.which("mhdr"))), ("perl", _perl_ok()),
                                       ("exim", bool(shutil.which("exim4") or shutil.which("exim")))) if present]


@pytest.fixture(scope="module")
def demo_messages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    workspace = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["demo", "--workspace", str(workspace), "--from", "2023-06-01",
                                       "--to", "2023-07-21"])
    assert result.exit_code == 0, result.output
    found = sorted(workspace.rglob("*.eml"))
    assert len(found) > 20
    return found


@pytest.fixture(scope="module")
def unit_messages(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, dict[str, str]]:
    """One message per unit of both seed programmes, with the longest subject a round writes."""
    folder = tmp_path_factory.mktemp("units")
    expected: dict[Path, dict[str, str]] = {}
    for programme in ("lucheng-2023", "huzhou-2023"):
        with (ROOT / "examples" / programme / "units.csv").open(encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                address = row["email"].split(";")[0].strip()
                subject = f"【{row['name']}】关于2023年7月15日亮灯督促有关事项的督办提醒：3项待办（红灯1项、黄灯2项）"
                sender = "市服务业高质量发展“十百千”工程建设工作专班（办公室设在市发展改革委）"
                message = build_email(idempotency_key=f"std|{row['code']}", mail_from=f"{sender} <zhuanban@example.org>",
                                      to_address=address, to_name=row["name"], subject=subject, text="正文",
                                      html=None, at=dt.datetime(2023, 7, 15, 2, tzinfo=dt.UTC))
                path = folder / f"{programme}-{row['code']}.eml"
                path.write_bytes(message.payload)
                expected[path] = {"Subject": subject, "From": f"{sender} <zhuanban@example.org>",
                                  "To": f"{row['name']} <{message.address}>"}
    return expected


def header_block(path: Path) -> str:
    return path.read_bytes().split(b"\r\n\r\n", 1)[0].decode("ascii")


def raw_header(path: Path, name: str) -> str:
    """The header's value as written (folded lines joined by their CRLF SP)."""
    match = re.search(rf"(?im)^{name}: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", header_block(path))
    assert match, f"{path.name}: no {name}"
    return match.group(1)


def lenient(path: Path, name: str) -> str:
    """Python's compat decoder: joins adjacent encoded-words as RFC 2047 §6.2 says."""
    parsed = message_from_bytes(path.read_bytes(), policy=policy.compat32)
    return str(make_header(decode_header(parsed[name])))


def decoded_by(decoder: str, values: list[str]) -> list[str]:
    if decoder == "mblaze":
        raise AssertionError("mblaze reads files: use mblaze_headers")
    if decoder == "perl":
        out = subprocess.run(["perl", "-e", PERL_STRICT], input="\0".join(values) + "\0", capture_output=True,
                             text=True, encoding="utf-8", check=True).stdout
        return out.split("\0")[:-1]
    exim = shutil.which("exim4") or shutil.which("exim") or "exim"
    results = []
    for value in values:
        unfolded = value.replace("\r\n", "")
        out = subprocess.run([exim, "-be", f"${{rfc2047d:{unfolded}}}"], capture_output=True, text=True)
        results.append(out.stdout.strip())
    return results


def mblaze_headers(paths: list[Path]) -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for name in HEADERS:
        out = subprocess.run(["mhdr", "-d", "-H", "-h", name.lower(), *map(str, paths)], capture_output=True,
                             text=True, encoding="utf-8", check=True).stdout
        for line in out.splitlines():
            file, _, value = line.partition("\t")
            found[(file, name)] = value
    return found


def assert_within_rfc2047_limits(path: Path) -> None:
    for line in header_block(path).split("\r\n"):
        words = ENCODED_WORD.findall(line)
        assert all(len(word) <= MAX_ENCODED_WORD for word in words), f"{path.name}: {line}"
        if words:
            assert len(line) <= 76, f"{path.name}: line of {len(line)} characters: {line}"
        assert len(line) <= 998


def test_every_demo_message_keeps_encoded_words_within_75_characters(demo_messages: list[Path]) -> None:
    for path in demo_messages:
        assert_within_rfc2047_limits(path)


def test_a_message_to_every_unit_keeps_within_the_limits(unit_messages: dict[Path, dict[str, str]]) -> None:
    assert len(unit_messages) > 40
    for path in unit_messages:
        assert_within_rfc2047_limits(path)


@pytest.mark.parametrize("decoder", DECODERS or [pytest.param("none", marks=pytest.mark.skip(
    reason="注意：未找到严格的 RFC 2047 解码器（mblaze 的 mhdr、Perl 的 Encode::MIME::Header、exim）；"
           "有 apt 的机器上 make 会安装 mblaze"))])
def test_strict_decoders_read_every_unit_name_and_subject_whole(
    decoder: str, unit_messages: dict[Path, dict[str, str]], demo_messages: list[Path]
) -> None:
    paths = [*unit_messages, *demo_messages]
    expected = {(str(path), name): unit_messages[path][name] if path in unit_messages else lenient(path, name)
                for path in paths for name in HEADERS}
    if decoder == "mblaze":
        got = mblaze_headers(paths)
    else:
        keys = list(expected)
        values = decoded_by(decoder, [raw_header(Path(file), name) for file, name in keys])
        got = dict(zip(keys, values, strict=True))
    wrong = {key: (got.get(key), want) for key, want in expected.items() if got.get(key) != want}
    assert not wrong, f"{decoder}: {len(wrong)} headers decoded differently, e.g. {next(iter(wrong.items()))}"
