"""A real SMTP server on loopback for the mail tests (aiosmtpd), shared by every test file
that reads what Paywatch mails: one handler, one way to point PAYWATCH_SMTP_* at it."""

from __future__ import annotations

import contextlib
import email
import os
import socket
import threading
from collections.abc import Iterator
from email import policy
from typing import NamedTuple

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")


class Received(NamedTuple):
    sender: str
    recipients: list[str]
    raw: bytes


class Inbox:
    """aiosmtpd handler: keeps every message received, in arrival order."""

    def __init__(self):
        self.messages: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def parsed(self, start: int = 0) -> list[email.message.EmailMessage]:
        """The messages from the `start`-th on, parsed."""
        return [email.message_from_bytes(m.raw, policy=policy.default) for m in self.messages[start:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(handler=None) -> Iterator[tuple[int, object]]:
    """Start a server on a free loopback port with `handler` (a new Inbox by default)."""
    handler = handler if handler is not None else Inbox()
    ctl = aiosmtpd_controller.Controller(handler, hostname="127.0.0.1", port=free_port())
    ctl.start()
    try:
        yield ctl.port, handler
    finally:
        ctl.stop()


def point_paywatch_at(mp: pytest.MonkeyPatch, port: int, sender: str = "paywatch@test.example.org",
                      retries: int = 2, backoff: float = 0.01) -> None:
    """PAYWATCH_SMTP_* at the loopback server; no routing file from the environment."""
    for k in [k for k in os.environ if k.startswith("PAYWATCH_SMTP_") or k == "PAYWATCH_ROUTING"]:
        mp.delenv(k)
    for k, v in {"HOST": "127.0.0.1", "PORT": str(port), "FROM": sender, "RETRIES": str(retries),
                 "BACKOFF": str(backoff), "TIMEOUT": "5"}.items():
        mp.setenv(f"PAYWATCH_SMTP_{k}", v)
