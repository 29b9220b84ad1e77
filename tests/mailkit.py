"""A real SMTP server on this machine (aiosmtpd) that keeps what it receives, for mail tests."""

from __future__ import annotations

import asyncio
import email
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from helpers import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    async def arrived(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait, letting the event loop run (an in-process server sends mail in the background),
        until `count` messages have arrived; then a moment longer, so that an extra one shows."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert len(self.messages) == count, f"{len(self.messages)} mails, expected {count}"

    def text(self, timeout: float = 10.0) -> str:
        """The text of the newest message, waiting up to `timeout` seconds for one."""
        deadline = time.monotonic() + timeout
        while not self.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.messages, "no mail arrived"
        message = self.messages[-1]
        parts = message.get_payload() if message.is_multipart() else [message]
        return "".join(p.get_payload(decode=True).decode() for p in parts)  # type: ignore[union-attr]

    def link(self) -> str:
        """The flow token of the newest message's link."""
        match = re.search(r"flow_token=([A-Za-z0-9_-]+)", self.text())
        assert match is not None
        return match[1]

    def url(self) -> str:
        """The whole link of the newest message."""
        match = re.search(r"https?://\S+flow_token=[A-Za-z0-9_-]+", self.text())
        assert match is not None
        return match[0]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()
