"""`duban run`: the scheduler service (see duban/service.py for what it guarantees)."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from duban.app.service import (
    EXIT_LOCK_HELD,
    EXIT_ROUND_FAILED,
    EXIT_RULES_INVALID,
    Controls,
    LockHeld,
    Service,
    held_lock,
    interruptible,
    log_event,
    run_service,
    shifted_clock,
)
from duban.cli import AppContext, main, pass_app
from duban.cli.rules import parse_at, rule_set_directory
from duban.engine.loader import RuleSetInvalid

if TYPE_CHECKING:
    from duban.app.health import HealthServer


def _configure_logging() -> None:
    from duban.app.logs import configure_service_logging

    configure_service_logging()


def _install_signal_handlers(controls: Controls) -> None:
    def on_term(signum: int, _frame: FrameType | None) -> None:
        log_event("signal", signal=signal.Signals(signum).name, action="stop")
        controls.stop.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        log_event("signal", signal="SIGHUP", action="reload")
        controls.reload.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)


@main.command("run")
@click.option("--once", is_flag=True, help="执行所有到期轮次（含补跑）、发送后退出（供 cron 使用）。")
@click.option("--at", "at_text", default=None,
              help="假定服务在此时点启动（ISO 格式，默认北京时间）：补跑和评估以此为准并按真实速度推进；"
                   "定时任务仍按系统时钟唤醒（用于试运行和测试）。")
@click.option("--health-port", type=int, default=None, envvar="DUBAN_HEALTH_PORT",
              help="在 127.0.0.1 的此端口提供健康检查 GET /healthz（DUBAN_HEALTH_PORT；与 duban doctor 相同的检查）。")
@click.option("--wait", is_flag=True, help="如另一实例已持有锁，等待其退出而不是直接退出。")
@click.option("--poll", "poll_seconds", type=float, default=3.0, show_default=True,
              help="检查规则目录是否变化的间隔秒数。")
@pass_app
def run(app: AppContext, once: bool, at_text: str | None, health_port: int | None, wait: bool,
        poll_seconds: float) -> None:
    """按节奏运行各轮次（会商、调度、分析……）并发送通知；停机后自动补跑。"""
    if app.unselected:
        # The configuration file lists several programmes and none was chosen: run them all.
        from duban.app.supervisor import run_programmes

        run_args = [*(["--once"] if once else []), *(["--at", at_text] if at_text else []),
                    *(["--wait"] if wait else []), "--poll", str(poll_seconds)]
        if health_port:
            click.echo("多个方案同时运行时，各方案的健康检查请用 duban doctor --json；--health-port 仅用于单个方案。", err=True)
        sys.exit(run_programmes(app.unselected, run_args, once=once))
    _configure_logging()
    controls = Controls()
    _install_signal_handlers(controls)
    clock = shifted_clock(parse_at(at_text) if at_text else None)
    directory = rule_set_directory(app)
    try:
        lock_context = held_lock(app.engine, wait=wait, stop=controls.stop)
        lock = lock_context.__enter__()
    except LockHeld as held:
        log_event("lock_held", logging.ERROR, lock=str(held),
                  message="另一个督办服务实例正在运行（已持有数据库锁），本实例退出；如需排队等待请加 --wait")
        sys.exit(EXIT_LOCK_HELD)
    from duban.notifiers.service import EXIT_DELIVERY_FAILED
    from duban.notifiers.transports import ConfigError
    from duban.notifiers.transports.settings import delivery_settings

    try:  # refuse to run rounds that could send nothing
        delivery_settings()
    except ConfigError as exc:
        lock_context.__exit__(None, None, None)
        click.echo(f"发送配置错误：{exc}；服务未启动。", err=True)
        sys.exit(EXIT_RULES_INVALID)
    try:
        service = Service(app.engine, directory)
        try:
            service.start()
        except RuleSetInvalid as invalid:
            for error in invalid.errors:
                click.echo(str(error), err=True)
            click.echo(f"规则集无效（{len(invalid.errors)} 处错误），服务未启动。", err=True)
            sys.exit(EXIT_RULES_INVALID)
        if once:
            # On a worker thread: SIGTERM is answered within seconds even while the rule engine works.
            reports = interruptible(lambda: service.tick(clock(), should_stop=controls.stop.is_set), controls.stop) or []
            for report in reports:
                click.echo(str(report))
            if not reports and not service.retry_due:
                click.echo("没有到期的轮次。")
            if service.retry_due:
                click.echo("有轮次未能完成（如数据库暂时不可用），该轮次已整体回滚、未发送任何通知；"
                           "下次运行会自动重试，详见日志中的 round_crashed。", err=True)
                sys.exit(EXIT_ROUND_FAILED)
            # Every send that did something (a round's, a retry's), else the last one: what went out,
            # what failed, whether the admin's report was sent or only queued.
            for outcome in service.deliveries or ([service.last_delivery] if service.last_delivery else []):
                click.echo(str(outcome))
            if service.delivery_failed:
                click.echo("有通知未能发出或发送受阻，详见上文与 duban outbox。", err=True)
                sys.exit(EXIT_DELIVERY_FAILED)
            return
        health = _start_health(app, health_port, app.rules_dir, lock.still_held, clock)
        try:
            code = run_service(service, clock=clock, controls=controls, lock=lock, poll_seconds=poll_seconds)
        finally:
            if health is not None:
                health.close()
        if code:
            sys.exit(code)
    finally:
        lock_context.__exit__(None, None, None)


def _start_health(app: AppContext, port: int | None, rules_root: Path, lock_held: Callable[[], bool],
                  clock: Callable[[], dt.datetime]) -> HealthServer | None:
    if not port:
        return None
    from duban.app.health import start_health_server
    from duban.cli.ops import _shown_db

    server = start_health_server(app.engine, port=port, rules_root=rules_root, shown_db=_shown_db(app),
                                 lock_held=lock_held, clock=clock)
    log_event("health_listening", url=f"http://127.0.0.1:{server.port}/healthz")
    return server
