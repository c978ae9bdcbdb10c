"""Forwarded replies by e-mail: one message per send through the configured SMTP server (aiosmtplib), its answer
turned into a forward_rules.SendAnswer. Never raises for server or network trouble; never logs the password."""

from __future__ import annotations

import logging

import aiosmtplib

from callbuddy_pbx.config.forwarding import SmtpConfig
from callbuddy_pbx.phone import redact
from callbuddy_pbx.recovery.forward_rules import Outcome, Reply, SendAnswer, email_message, smtp_answer

log = logging.getLogger(__name__)


class EmailSender:
    def __init__(self, smtp: SmtpConfig) -> None:
        self._smtp = smtp

    async def send(self, reply: Reply, key: str, to: str, timezone: str) -> SendAnswer:
        message = email_message(reply, key, to, self._smtp.from_address, timezone)
        smtp = self._smtp
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username or None,
                password=smtp.password or None,
                use_tls=smtp.security == "tls",
                start_tls=smtp.security == "starttls",  # required when chosen; never attempted with "none"
                timeout=smtp.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:  # the only recipient refused
            first = exc.recipients[0] if exc.recipients else None
            code = first.code if first is not None else 550
            return smtp_answer(code, _said(first.message if first is not None else "recipient refused"), True)
        except aiosmtplib.SMTPRecipientRefused as exc:
            return smtp_answer(exc.code, _said(exc.message), True)
        except aiosmtplib.SMTPDataError as exc:  # the message itself refused: the same message gets the same answer
            return smtp_answer(exc.code, _said(exc.message), True)
        except aiosmtplib.SMTPResponseException as exc:  # greeting, login, sender: the server's or our setup
            return smtp_answer(exc.code, _said(exc.message), False)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            where = f"{smtp.host}:{smtp.port}"
            return SendAnswer(
                Outcome.RETRY, f"SMTP server {where} not reachable: {type(exc).__name__}: {_said(str(exc))}"
            )
        return SendAnswer(Outcome.SENT)


def _said(text: str) -> str:
    """A server's words, fit for a log line and the row: numbers masked, one line, bounded."""
    return redact(" ".join(str(text).split()))[:200]
