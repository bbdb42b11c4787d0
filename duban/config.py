"""The configuration file (duban.toml): what the DUBAN_* environment variables hold, in one place.

Precedence, highest first: command-line options, environment variables, the configuration file,
built-in defaults. The file is found at `--config PATH`, `DUBAN_CONFIG`, `./duban.toml`,
`$XDG_CONFIG_HOME/duban/duban.toml` (default `~/.config/duban/duban.toml`), then `/etc/duban/duban.toml`.

The rest of duban reads settings from the environment (`os.environ`); `apply` copies the file's
values into the environment for every variable the environment does not already set, so the
environment keeps overriding the file and no other module needs to know the file exists.

A secret never needs to be written into the file: every setting also accepts `<key>_file` (the
path of a file holding the value, e.g. `password_file = "/etc/duban/smtp-password"`), read at start.

Several programmes in one installation are tables under `[programmes.<code>]`, each with its own
`db` (a SQLite file, or a PostgreSQL URL with `schema`), `rules` and optional overrides; the global
`--programme CODE` selects one.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SETTINGS",
    "Config",
    "ConfigFileError",
    "Programme",
    "Setting",
    "apply",
    "config_search_path",
    "file_mode_umask",
    "find_config",
    "load_config",
    "masked",
]


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    env: str
    meaning: str  # Chinese, shown by `duban config show`
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("database", "url", "DUBAN_DB", "数据库（SQLite 文件路径或 SQLAlchemy URL）", secret=True),
    Setting("database", "schema", "DUBAN_DB_SCHEMA", "PostgreSQL 模式名（多个方案共用一个库时，每个方案一个模式）"),
    Setting("database", "sqlite_timeout", "DUBAN_SQLITE_TIMEOUT", "SQLite 写锁等待秒数"),
    Setting("rules", "dir", "DUBAN_RULES", "规则目录"),
    Setting("mail", "transport", "DUBAN_TRANSPORT", "发送渠道：file、smtp、dingtalk，可用逗号同时启用多个"),
    Setting("mail", "from", "DUBAN_MAIL_FROM", "发件人，如 鹿城区十百千工作专班 <duban@lucheng.example.org>"),
    Setting("mail", "admin_email", "DUBAN_ADMIN_EMAIL", "管理员邮箱（接收发送失败清单；programme.yaml 的 admin_email 优先）"),
    Setting("outbox", "dir", "DUBAN_OUTBOX_DIR", "file 渠道写出 .eml 的目录"),
    Setting("smtp", "host", "DUBAN_SMTP_HOST", "邮件服务器地址"),
    Setting("smtp", "port", "DUBAN_SMTP_PORT", "邮件服务器端口（465 为 SSL，587 为 STARTTLS）"),
    Setting("smtp", "tls", "DUBAN_SMTP_TLS", "加密方式：none、starttls、tls"),
    Setting("smtp", "user", "DUBAN_SMTP_USER", "邮箱登录账号"),
    Setting("smtp", "password", "DUBAN_SMTP_PASSWORD", "邮箱登录密码（建议用 password_file）", secret=True),
    Setting("smtp", "ca_file", "DUBAN_SMTP_CA_FILE", "邮件服务器证书的 CA 文件（自签名或内网证书时填写）"),
    Setting("smtp", "ehlo", "DUBAN_SMTP_EHLO", "EHLO 主机名（默认本机主机名）"),
    Setting("smtp", "rate", "DUBAN_SMTP_RATE", "每分钟最多发送邮件数（0 为不限；服务器限速时填写）"),
    Setting("smtp", "connections", "DUBAN_SMTP_CONNECTIONS", "同时使用的 SMTP 连接数"),
    Setting("dingtalk", "webhook", "DUBAN_DINGTALK_WEBHOOK", "工作专班钉钉（浙政钉）机器人 Webhook 地址", secret=True),
    Setting("dingtalk", "secret", "DUBAN_DINGTALK_SECRET", "机器人加签密钥", secret=True),
    Setting("dingtalk", "per_minute", "DUBAN_DINGTALK_PER_MINUTE", "每个机器人每分钟最多发送条数（钉钉限制 20）"),
    Setting("reports", "url", "DUBAN_REPORTS_URL", "专报、通报的发布地址（通知中的链接以此开头）"),
    Setting("reports", "dir", "DUBAN_REPORTS_DIR", "专报、通报文件所在文件夹（duban web 在 /reports/ 下提供给已登录用户）"),
    Setting("web", "url", "DUBAN_WEB_URL", "网页端对外地址（通知中的报送、反馈链接以此开头）"),
    Setting("web", "secret_key", "DUBAN_WEB_SECRET", "网页端签名密钥（登录链接、会话）", secret=True),
    Setting("web", "upload_dir", "DUBAN_UPLOAD_DIR", "附件保存目录（不填则存入数据库）"),
    Setting("files", "mode", "DUBAN_FILE_MODE", "duban 创建的数据库、邮件、报告文件的权限（默认 0600，目录 0700）"),
    Setting("service", "health_port", "DUBAN_HEALTH_PORT", "服务健康检查端口（GET /healthz，仅监听 127.0.0.1）"),
    Setting("service", "log_format", "DUBAN_LOG_FORMAT", "服务日志格式：json（每行一条 JSON）或 text"),
)

_BY_PLACE = {(s.section, s.key): s for s in SETTINGS}
_BY_ENV = {s.env: s for s in SETTINGS}
# Keys allowed inside [programmes.<code>]: a programme's own database and rules, plus any setting
# written as "section.key" = value (e.g. "mail.from" = "…").
_PROGRAMME_KEYS = {"db": "DUBAN_DB", "schema": "DUBAN_DB_SCHEMA", "rules": "DUBAN_RULES", "name": ""}


class ConfigFileError(ValueError):
    """A configuration file that cannot be used; the text is Chinese and names file and line."""


@dataclass(frozen=True)
class Programme:
    code: str
    name: str
    values: Mapping[str, str]  # environment variable → value, for this programme only


@dataclass
class Config:
    path: Path | None
    values: dict[str, str] = field(default_factory=dict)  # environment variable → value
    sources: dict[str, str] = field(default_factory=dict)  # environment variable → where it came from
    programmes: dict[str, Programme] = field(default_factory=dict)

    def programme(self, code: str | None) -> Programme | None:
        """The selected programme; with none selected, the only one if the file lists exactly one."""
        if code is None:
            return next(iter(self.programmes.values())) if len(self.programmes) == 1 else None
        if code not in self.programmes:
            known = "、".join(self.programmes) or "（配置文件中没有 [programmes.…] 表）"
            raise ConfigFileError(f"没有名为“{code}”的方案。配置文件 {self.path or '（未找到）'} 中的方案：{known}")
        return self.programmes[code]


def config_search_path(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    xdg = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", "~")).expanduser() / ".config")
    return [Path("duban.toml"), xdg / "duban" / "duban.toml", Path("/etc/duban/duban.toml")]


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    chosen = explicit or env.get("DUBAN_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigFileError(f"找不到配置文件 {path}（--config 或 DUBAN_CONFIG 指定）。")
        return path
    return next((path for path in config_search_path(env) if path.is_file()), None)


def _line_of(text: str, key: str, after: int = 0) -> int:
    pattern = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=', re.M)
    match = pattern.search(text, after)
    return text.count("\n", 0, match.start()) + 1 if match else 0


def _section_offset(text: str, header: str) -> int:
    match = re.search(rf"^\s*\[\s*{re.escape(header)}\s*\]", text, re.M)
    return match.end() if match else 0


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}" if line else str(path)


def _scalar(path: Path, line: int, name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | str):
        return str(value)
    raise ConfigFileError(f"{_where(path, line)}：设置 {name} 应为文字或数字，实际为{type(value).__name__}。")


def _read_secret_file(path: Path, line: int, name: str, file_name: str) -> str:
    secret_path = Path(file_name).expanduser()
    if not secret_path.is_absolute():
        secret_path = path.parent / secret_path
    try:
        return secret_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigFileError(
            f"{_where(path, line)}：无法读取 {name} 指定的文件 {secret_path}（{exc.strerror or exc}）。"
        ) from None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"，是否应为“{close[0]}”？" if close else "。"


def _section_values(path: Path, text: str, section: str, table: Mapping[str, Any], header: str) -> dict[str, str]:
    values: dict[str, str] = {}
    offset = _section_offset(text, header)
    known_keys = [key for (sec, key) in _BY_PLACE if sec == section]
    for key, value in table.items():
        line = _line_of(text, key, offset)
        base = key[: -len("_file")] if key.endswith("_file") and (section, key) not in _BY_PLACE else key
        setting = _BY_PLACE.get((section, base))
        if setting is None:
            raise ConfigFileError(
                f"{_where(path, line)}：[{header}] 中没有设置“{key}”{_did_you_mean(key, known_keys)}"
                f"可用的设置：{'、'.join(known_keys)}。"
            )
        if base != key:
            values[setting.env] = _read_secret_file(path, line, f"[{header}] {key}", _scalar(path, line, key, value))
        else:
            values[setting.env] = _scalar(path, line, key, value)
    return values


def load_config(path: Path | None) -> Config:
    """Parse a configuration file; Chinese errors name the file and the line."""
    if path is None:
        return Config(path=None)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"无法读取配置文件 {path}：{exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"配置文件 {path} 格式有误（TOML）：{_toml_message(str(exc))}") from None
    config = Config(path=path)
    sections = sorted({s.section for s in SETTINGS})
    for section, table in document.items():
        if section == "programmes":
            config.programmes = _programmes(path, text, table)
            continue
        if section not in sections or not isinstance(table, dict):
            line = text.count("\n", 0, _section_offset(text, section)) + 1 if _section_offset(text, section) else 0
            raise ConfigFileError(
                f"{_where(path, line)}：没有名为 [{section}] 的设置分组{_did_you_mean(section, [*sections, 'programmes'])}"
                f"可用的分组：{'、'.join([*sections, 'programmes'])}。"
            )
        for env_name, value in _section_values(path, text, section, table, section).items():
            config.values[env_name] = value
            config.sources[env_name] = f"{path}"
    return config


def _programmes(path: Path, text: str, table: Any) -> dict[str, Programme]:
    programmes: dict[str, Programme] = {}
    if not isinstance(table, dict):
        raise ConfigFileError(f"{path}：programmes 应写成 [programmes.方案代码] 表。")
    for code, entry in table.items():
        header = f"programmes.{code}"
        line = text.count("\n", 0, _section_offset(text, header)) + 1 if _section_offset(text, header) else 0
        if not re.fullmatch(r"[A-Za-z0-9_-]+", code):
            raise ConfigFileError(f"{_where(path, line)}：方案代码“{code}”只能由字母、数字、_ 和 - 组成。")
        if not isinstance(entry, dict):
            raise ConfigFileError(f"{_where(path, line)}：[{header}] 应是一个表。")
        values: dict[str, str] = {}
        name = code
        offset = _section_offset(text, header)
        for key, value in entry.items():
            key_line = _line_of(text, key, offset)
            if key == "name":
                name = _scalar(path, key_line, key, value)
            elif key in _PROGRAMME_KEYS:
                values[_PROGRAMME_KEYS[key]] = _scalar(path, key_line, key, value)
            elif isinstance(value, dict) and key in {s.section for s in SETTINGS}:
                values.update(_section_values(path, text, key, value, f"{header}.{key}"))
            else:
                allowed = [*(_PROGRAMME_KEYS), *sorted({s.section for s in SETTINGS})]
                raise ConfigFileError(
                    f"{_where(path, key_line)}：[{header}] 中没有设置“{key}”{_did_you_mean(key, allowed)}"
                    "方案可写 db、schema、rules、name，或 [programmes.代码.smtp] 这样的分组。"
                )
        if "DUBAN_DB" not in values:
            raise ConfigFileError(f"{_where(path, line)}：[{header}] 缺少 db（该方案的数据库）。")
        programmes[code] = Programme(code=code, name=name, values=values)
    return programmes


def _toml_message(message: str) -> str:
    """tomllib's English reason, with the position kept and the common reasons in Chinese."""
    position = re.search(r"\(at line (\d+), column (\d+)\)", message)
    where = f"第 {position.group(1)} 行第 {position.group(2)} 列：" if position else ""
    reason = message.split(" (at ")[0]
    translations = {
        "Invalid value": "值无效（文字要加英文双引号）",
        "Expected '=' after a key in a key/value pair": "键后面缺少 =",
        "Cannot overwrite a value": "同一个设置写了两次",
        "Invalid statement": "无法识别的语句",
        "Unclosed array": "方括号未闭合",
        "Illegal character": "含有不允许的字符",
        "Expected newline or end of document after a statement": "一行只能写一个设置",
    }
    for english, chinese in translations.items():
        if reason.startswith(english):
            return f"{where}{chinese}"
    return f"{where}{reason}"


def apply(config: Config, programme: Programme | None, environ: MutableMapping[str, str] | None = None) -> None:
    """Copy the file's settings into the environment where the environment does not set them.

    A programme's own values beat the file's global ones; the environment beats both.
    """
    environ = os.environ if environ is None else environ
    merged = dict(config.values)
    if programme is not None:
        merged.update(programme.values)
        for env_name in programme.values:
            config.sources[env_name] = f"{config.path} [programmes.{programme.code}]"
    for env_name, value in merged.items():
        if env_name and not environ.get(env_name):  # an empty variable counts as unset
            environ[env_name] = value


def file_mode_umask(setting: str | None) -> int:
    """The umask that makes duban's files `setting` (default 0600) and its folders the same plus x.

    Databases, .eml files, reports, exports and backups hold addresses and notice content, so by
    default only the service's own user can read them (files 0600, folders 0700).
    """
    text = (setting or "").strip() or "0600"
    try:
        mode = int(text, 8)
    except ValueError:
        raise ConfigFileError(f"文件权限“{text}”无效，应写成八进制，如 0600 或 0640。") from None
    if not 0 <= mode <= 0o777 or not mode & 0o600 == 0o600:
        raise ConfigFileError(f"文件权限“{text}”无效：属主必须可读写（如 0600、0640）。")
    folder_mode = mode | ((mode & 0o444) >> 2)  # a folder readable by someone is also enterable by them
    return 0o777 & ~folder_mode


def masked(env_name: str, value: str) -> str:
    """A value as `config show` prints it: secrets hidden, passwords inside URLs hidden."""
    setting = _BY_ENV.get(env_name)
    if setting is None or not value:
        return value
    if env_name == "DUBAN_DB":
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1****@", value)
    if env_name == "DUBAN_DINGTALK_WEBHOOK":
        return re.sub(r"(access_token=)[^&]+", r"\1****", value)
    if setting.secret:
        return "****（已设置）"
    return value
