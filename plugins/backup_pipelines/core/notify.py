"""The one email path: every email of the package is a ``Message`` sent through ``send``.

A message has a plain-text part and a well-formed HTML part (``multipart/alternative``), built
together from the same blocks by ``Body`` so they cannot say different things. It goes through the
Airflow SMTP connection (smtp provider's ``SmtpHook``: host, port, TLS, login, retries), sync from a
task and, through a worker thread, from the triggerer (``send_async``). Failure emails are the
provider's ``SmtpNotifier`` (rendered by Airflow with the task context) and stay there.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

log = logging.getLogger(__name__)

_STYLE = (
    "body{font-family:sans-serif;color:#222}table{border-collapse:collapse;margin:8px 0}"
    "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}"
)


@dataclass
class Body:
    """Blocks of an email body, rendered once as text and once as HTML."""

    _text: list[str] = field(default_factory=list)
    _html: list[str] = field(default_factory=list)

    def para(self, text: str) -> Body:
        self._text.append(text)
        self._html.append(f"<p>{html.escape(text)}</p>")
        return self

    def heading(self, text: str) -> Body:
        self._text.append(f"{text}\n{'-' * len(text)}")
        self._html.append(f"<h3>{html.escape(text)}</h3>")
        return self

    def table(self, rows: Iterable[tuple[str, Any]]) -> Body:
        """Two columns: a label and its value."""
        pairs = [(str(k), str(v)) for k, v in rows]
        width = max((len(k) for k, _ in pairs), default=0)
        self._text.append("\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs))
        self._html.append(html_table(pairs))
        return self

    def grid(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Body:
        """A table with a header row."""
        body = [[str(c) for c in row] for row in rows]
        widths = [max(len(str(h)), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
        self._text.append("\n".join(lines))
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
        self._html.append(f"<table><tr>{head}</tr>{cells}</table>")
        return self

    def items(self, lines: Iterable[str]) -> Body:
        entries = [str(line) for line in lines]
        self._text.append("\n".join(f"- {line}" for line in entries))
        self._html.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in entries) + "</ul>")
        return self

    def link(self, label: str, url: str) -> Body:
        self._text.append(f"{label}: {url}")
        self._html.append(
            f'<p>{html.escape(label)}: <a href="{html.escape(url, quote=True)}">{html.escape(url)}</a></p>'
        )
        return self

    def raw(self, *, text: str, html_fragment: str) -> Body:
        """A block rendered elsewhere (a report), given in both forms."""
        self._text.append(text)
        self._html.append(html_fragment)
        return self

    def text(self) -> str:
        return "\n\n".join(self._text) + "\n"

    def html(self, title: str) -> str:
        return (
            '<!DOCTYPE html><html><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            + "".join(self._html)
            + "</body></html>"
        )


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str

    @classmethod
    def of(cls, subject: str, body: Body) -> Message:
        return cls(subject=subject, text=body.text(), html=body.html(subject))


def html_table(rows: Iterable[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th align='left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def build_mime(message: Message, *, from_email: str, to: Sequence[str]) -> EmailMessage:
    mime = EmailMessage()
    mime["Subject"] = message.subject
    mime["From"] = from_email
    mime["To"] = ", ".join(to)
    mime["Date"] = formatdate(localtime=False)
    mime["Message-ID"] = make_msgid(domain="backup-pipelines")
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime


def send(message: Message, *, smtp_conn_id: str, from_email: str, to: Sequence[str]) -> None:
    """Send one message through the Airflow SMTP connection, with the connection's retries."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    mime = build_mime(message, from_email=from_email, to=to)
    with SmtpHook(smtp_conn_id=smtp_conn_id) as smtp:
        client: Any = smtp._smtp_client  # the provider builds no multipart/alternative message itself
        for attempt in range(smtp.smtp_retry_limit + 1):
            try:
                client.send_message(mime, from_addr=from_email, to_addrs=list(to))
                break
            except Exception:
                if attempt == smtp.smtp_retry_limit:
                    raise
    log.info("emailed %s: %s", ", ".join(to), message.subject)


async def send_async(message: Message, *, smtp_conn_id: str, from_email: str, to: Sequence[str]) -> None:
    """``send`` from the triggerer's event loop (SMTP is blocking: it runs in a worker thread)."""
    await asyncio.to_thread(send, message, smtp_conn_id=smtp_conn_id, from_email=from_email, to=to)
