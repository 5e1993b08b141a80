"""Outgoing e-mail over SMTP, sent in a background thread so that no request waits for it.

With `STRONGROOM_SMTP_HOST` unset, a message is logged by its purpose alone
(never an address, subject or body) and not sent, so a first run needs no
mail server. A failed send is logged and not retried:
notifications are a convenience, and the event they report is already stored.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from email.message import EmailMessage

from strongroom.base.config import Settings
from strongroom.base.logging import get_logger

log = get_logger(__name__)

SMTP_TIMEOUT_SECONDS = 30


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.sender = settings.smtp_from
        self.starttls = settings.smtp_starttls
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def compose(self, recipient: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        return message

    def send_later(self, message: EmailMessage, purpose: str) -> None:
        """Send the message in a thread of its own and return at once; `purpose` names it in logs."""
        if not self.host:
            log.info("mail_not_sent", purpose=purpose, reason="STRONGROOM_SMTP_HOST is not set")
            return
        thread = threading.Thread(target=self._send, args=(message, purpose), daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        """Wait for the messages being sent, for a clean shutdown."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    def _send(self, message: EmailMessage, purpose: str) -> None:
        try:
            with smtplib.SMTP(self.host or "", self.port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            # The exception's text can quote the recipient's address, so only its type and
            # SMTP reply code are logged.
            log.error(
                "mail_failed",
                purpose=purpose,
                smtp_host=self.host,
                smtp_port=self.port,
                error=type(exc).__name__,
                smtp_code=getattr(exc, "smtp_code", None),
            )
            return
        log.info("mail_sent", purpose=purpose)
