"""Delivering warning messages by e-mail (SMTP) and webhook (HTTP POST of JSON).

A message that cannot be delivered is kept and retried on the next rounds (up to
``max_attempts``), so a mail server restart does not lose a warning; each outcome is counted
in ``cityos_warning_deliveries_total``.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
from prometheus_client import Counter

from cityos_support.monitoring.rules import WarningMessage

logger = logging.getLogger(__name__)

DELIVERIES = Counter(
    "cityos_warning_deliveries_total", "Warning notifications sent", ["channel", "outcome"]
)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "cityos@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


class DeliveryError(Exception):
    """A target could not be reached."""


def send_email(config: SmtpConfig, recipient: str, message: WarningMessage) -> None:
    email = EmailMessage()
    email["From"] = config.sender
    email["To"] = recipient
    email["Subject"] = message.subject
    email.set_content(message.text())
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
            if config.starttls:
                smtp.starttls()
            if config.username and config.password:
                smtp.login(config.username, config.password)
            smtp.send_message(email)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"mail to {recipient} via {config.host}:{config.port}: {exc}") from exc


def send_webhook(url: str, message: WarningMessage, *, timeout: float = 10.0) -> None:
    try:
        response = httpx.post(url, json=message.as_json(), timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {url}: {exc}") from exc


@dataclass
class _Pending:
    target: str
    message: WarningMessage
    attempts: int = 0


class Dispatcher:
    """Sends each message to each of its rule's targets, retrying failures later."""

    def __init__(self, smtp: SmtpConfig | None, *, max_attempts: int = 5) -> None:
        self._smtp = smtp
        self._max_attempts = max_attempts
        self._pending: list[_Pending] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def dispatch(self, messages: Sequence[WarningMessage]) -> int:
        """Send new messages and retry the pending ones; returns how many were delivered."""
        queue = self._pending + [
            _Pending(target, message) for message in messages for target in message.rule.notify
        ]
        self._pending = []
        delivered = 0
        for item in queue:
            channel = "email" if item.target.startswith("mailto:") else "webhook"
            try:
                self._send(item.target, item.message)
            except DeliveryError as exc:
                item.attempts += 1
                DELIVERIES.labels(channel, "failure").inc()
                if item.attempts < self._max_attempts:
                    logger.warning("warning delivery failed (will retry): %s", exc)
                    self._pending.append(item)
                else:
                    logger.error(
                        "warning delivery abandoned after %d tries: %s", item.attempts, exc
                    )
                continue
            DELIVERIES.labels(channel, "success").inc()
            delivered += 1
        return delivered

    def _send(self, target: str, message: WarningMessage) -> None:
        if target.startswith("mailto:"):
            if self._smtp is None:
                raise DeliveryError(f"{target}: no SMTP server configured (CITYOS_SMTP_HOST)")
            send_email(self._smtp, target.removeprefix("mailto:"), message)
        elif target.startswith(("http://", "https://")):
            send_webhook(target, message)
        else:
            raise DeliveryError(f"unknown notification target {target!r}")
