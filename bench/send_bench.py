"""Send benchmark: N notices rendered from the templates and sent through the outbox to a local
SMTP sink (aiosmtpd in its own process), against two baselines sending the same prebuilt bytes:

  (a) a raw aiosmtplib loop over one reused connection   (target: outbox >= 0.8x)
  (b) a naive smtplib script, one connection per message (target: outbox >= 2x)

plain and with STARTTLS, interleaved and repeated (medians; the machine is shared).
Run: .venv/bin/python -m bench send [--count 10000] [--pool 4] [--repeat 3] [--modes none,starttls]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import aiosmtplib

from duban.notifiers.digest import Recipient
from duban.notifiers.message import OutgoingMessage, build_email_messages
from duban.notifiers.outbox import drain, enqueue
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import ROUND_AT, sample_digest, three_lagging_items
from duban.notifiers.sink import free_port, make_self_signed_cert
from duban.notifiers.transports.smtp import SmtpConfig, SmtpTransport
from duban.store.db import create_all, make_engine, transaction

ROOT = Path(__file__).resolve().parents[1]
MAIL_FROM = "工作专班 <zhuanban@lucheng.example.cn>"


@contextmanager
def sink_process(tls: str, cert: Path | None, key: Path | None) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "duban.notifiers.sink", "--port", str(port), "--tls", tls]
    if cert and key:
        command += ["--cert", str(cert), "--key", str(key)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"SMTP sink did not start: {line!r}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def render_messages(count: int) -> tuple[list[OutgoingMessage], float]:
    renderer = DigestRenderer(ROOT / "rules" / "templates")
    items = three_lagging_items()
    start = time.perf_counter()
    messages: list[OutgoingMessage] = []
    for n in range(count):
        item = dataclasses.replace(items[n % 3], idempotency_key=f"bench|{n}")
        digest = sample_digest(
            round_key=f"bench:{n}",
            recipient=Recipient(f"u{n}", f"单位{n}", "department", (f"unit{n}@lucheng.example.cn",)),
            items=(item,),
        )
        messages.extend(build_email_messages(digest, renderer.render(digest), mail_from=MAIL_FROM))
    return messages, time.perf_counter() - start


def tls_context(cert: Path | None) -> ssl.SSLContext | None:
    return ssl.create_default_context(cafile=str(cert)) if cert else None


async def outbox_run(messages: list[OutgoingMessage], port: int, tls: str, cert: Path | None, pool: int) -> float:
    workdir = Path(tempfile.mkdtemp(prefix="duban-bench-"))
    engine = make_engine(str(workdir / "bench.db"))
    create_all(engine)
    with transaction(engine) as session:
        enqueue(session, messages, now=ROUND_AT)
    config = SmtpConfig(port=port, tls=tls, mail_from=MAIL_FROM, pool_size=pool, ca_file=str(cert or ""))
    later = ROUND_AT + timedelta(seconds=1)
    start = time.perf_counter()
    report = await drain(engine, SmtpTransport(config), now=lambda: later, worker="bench")
    elapsed = time.perf_counter() - start
    engine.dispose()
    if report.sent != len(messages):
        raise RuntimeError(f"outbox sent {report.sent} of {len(messages)}: {report.failures[:3]}")
    return len(messages) / elapsed


async def raw_loop(messages: list[OutgoingMessage], port: int, tls: str, cert: Path | None) -> float:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, start_tls=tls == "starttls", tls_context=tls_context(cert)
    )
    start = time.perf_counter()
    await client.connect()
    for message in messages:
        await client.sendmail("zhuanban@lucheng.example.cn", [message.address], message.payload)
    await client.quit()
    return len(messages) / (time.perf_counter() - start)


def naive_smtplib(messages: list[OutgoingMessage], port: int, tls: str, cert: Path | None) -> float:
    context = tls_context(cert)
    start = time.perf_counter()
    for message in messages:
        with smtplib.SMTP("127.0.0.1", port) as client:
            if tls == "starttls":
                client.starttls(context=context)
            client.sendmail("zhuanban@lucheng.example.cn", [message.address], message.payload)
    return len(messages) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--naive-count", type=int, default=2_000, help="messages for the slow smtplib baseline")
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds of the three runs; medians reported")
    parser.add_argument("--modes", default="none,starttls", help="TLS modes to measure, comma-separated")
    # `python -m bench send --count 2000` passes the benchmark's name through: ignore what is not ours.
    args, _ = parser.parse_known_args(argv)

    messages, render_seconds = render_messages(args.count)
    print(f"rendered+built {len(messages)} digests in {render_seconds:.1f}s ({len(messages) / render_seconds:.0f}/s)")

    certdir = Path(tempfile.mkdtemp(prefix="duban-bench-tls-"))
    wanted = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    made = make_self_signed_cert(certdir) if "starttls" in wanted else None
    modes: list[tuple[str, Path | None, Path | None]] = [("none", None, None)] if "none" in wanted else []
    if made:
        modes.append(("starttls", made[0], made[1]))
    elif "starttls" in wanted:
        print("STARTTLS skipped: no openssl to make a certificate")
    for tls, cert, key in modes:
        # The machine is shared: the three runs are interleaved and repeated, so that a burst of
        # someone else's load hits all three alike, and each round's ratios compare neighbours.
        rounds: list[tuple[float, float, float]] = []
        for n in range(args.repeat):
            with sink_process(tls, cert, key) as port:
                outbox = asyncio.run(outbox_run(messages, port, tls, cert, args.pool))
            with sink_process(tls, cert, key) as port:
                raw = asyncio.run(raw_loop(messages, port, tls, cert))
            with sink_process(tls, cert, key) as port:
                naive = naive_smtplib(messages[: args.naive_count], port, tls, cert)
            rounds.append((outbox, raw, naive))
            print(f"  [{tls}] round {n + 1}: outbox {outbox:.0f} | raw {raw:.0f} | naive {naive:.0f} msg/s "
                  f"({outbox / raw:.2f}x raw, {outbox / naive:.2f}x naive)", flush=True)
        outbox, raw, naive = (statistics.median(r[i] for r in rounds) for i in range(3))
        vs_raw = statistics.median(r[0] / r[1] for r in rounds)
        vs_naive = statistics.median(r[0] / r[2] for r in rounds)
        print(
            f"[{tls}] medians of {len(rounds)}: outbox (pool {args.pool}, SQLite, commit per message) {outbox:.0f} msg/s"
            f" | raw aiosmtplib 1 conn {raw:.0f} msg/s ({vs_raw:.2f}x, target >= 0.8x)"
            f" | naive smtplib conn/msg {naive:.0f} msg/s ({vs_naive:.2f}x, target >= 2x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
