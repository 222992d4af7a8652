"""Notifications when runs end: e-mail through SMTP and JSON webhooks, each with the run URL.

A job's `notify` holds {"on": "failure" | "always" | "never", "emails": [...], "webhook": url}.
Sending never blocks the scheduler loop and a failed send is logged, never raised.

A webhook may not reach the platform's own insides: a host that resolves to a loopback,
link-local, private or otherwise non-public address is refused when the job is saved and
again when the hook is sent (the name may resolve elsewhere by then), unless `webhook_allow`
names the host, the address or its network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import smtplib
import socket
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
from traitlets import Bool, Integer, List, Unicode
from traitlets.config import LoggingConfigurable

from dsml.scheduler.exceptions import BadRequest

EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+")

log = logging.getLogger("dsml.scheduler")


class Notifier(LoggingConfigurable):
    """Send run outcomes by e-mail and webhook."""

    smtp_host = Unicode("", config=True, help="SMTP server for e-mail (empty: no e-mail).")
    smtp_port = Integer(25, config=True, help="TCP port of the SMTP server.")
    smtp_from = Unicode(
        "dsml-scheduler@localhost", config=True, help="Sender address of notification e-mails."
    )
    smtp_user = Unicode("", config=True, help="SMTP user name (empty: no login).")
    smtp_password = Unicode("", config=True, help="SMTP password.")
    smtp_starttls = Bool(False, config=True, help="Use STARTTLS with the SMTP server.")
    webhook_allow = List(
        Unicode(),
        config=True,
        help="Hosts, addresses or networks (CIDR) webhooks may reach although they are "
        "loopback, link-local or private, e.g. 127.0.0.1 or hooks.internal.example.",
    )
    max_emails = Integer(10, config=True, help="E-mail recipients one job may notify (a count).")
    email_domains = List(
        Unicode(),
        config=True,
        help="Domains notification e-mails may go to, e.g. example.com (empty: any domain).",
    )

    def check_emails(self, emails: Any) -> list[str]:
        """The job's recipients, within `max_emails` and `email_domains` (BadRequest if not)."""
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise BadRequest("notify.emails must be a list of e-mail addresses")
        if len(emails) > self.max_emails:
            raise BadRequest(
                f"notify.emails lists {len(emails)} recipients; the limit (max_emails) is "
                f"{self.max_emails}"
            )
        for email in emails:
            if not EMAIL.fullmatch(email):
                raise BadRequest(f"notify.emails: {email!r} is not an e-mail address")
            domain = email.rsplit("@", 1)[1].lower()
            if self.email_domains and domain not in {d.lower() for d in self.email_domains}:
                raise BadRequest(
                    f"notify.emails: {email} is outside the allowed domains "
                    f"({', '.join(self.email_domains)})"
                )
        return emails

    def _allowed(self, host: str, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        for item in self.webhook_allow:
            if item.lower() == host.lower():
                return True
            try:
                if ip in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
        return False

    async def check_webhook(self, url: Any) -> str:
        """The URL, if its host resolves only to public addresses (or is allow-listed).

        BadRequest names what was found and how an admin allows it (`scheduler.webhook_allow`).
        """
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest("notify.webhook must be an http(s) URL")
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            raise BadRequest(f"notify.webhook {url!r} is not a valid URL") from None
        if not host:
            raise BadRequest(f"notify.webhook {url!r} names no host")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            raise BadRequest(f"notify.webhook host {host} does not resolve") from None
        for info in infos:
            address = str(info[4][0]).split("%")[0]
            ip = ipaddress.ip_address(address)
            if not ip.is_global or ip.is_multicast:
                if not self._allowed(host, address):
                    raise BadRequest(
                        f"notify.webhook host {host} resolves to {address}, a loopback, "
                        "link-local or private address; webhooks go to public addresses "
                        "unless the admin lists the host in scheduler.webhook_allow"
                    )
        return url

    @staticmethod
    def wanted(job: dict[str, Any], run: dict[str, Any]) -> bool:
        """Whether the job asks to hear about this run's outcome (failures by default)."""
        on = (job.get("notify") or {}).get("on", "failure")
        if on == "never":
            return False
        if on == "always":
            return True
        return run["state"] != "succeeded" and run["state"] != "cancelled"

    async def run_finished(self, job: dict[str, Any], run: dict[str, Any], url: str) -> None:
        """Send what the job asks for; log failures."""
        if not self.wanted(job, run):
            return
        notify = job.get("notify") or {}
        payload = {
            "job": {"id": job["id"], "name": job["name"], "owner": job["owner"]},
            "run": {
                "id": run["id"],
                "state": run["state"],
                "attempt": run["attempt"],
                "scheduled_for": run["scheduled_for"],
                "error": run["error"],
                "message": run["message"],
            },
            "url": url,
        }
        if notify.get("webhook"):
            try:
                await self.check_webhook(notify["webhook"])
                async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
                    r = await client.post(notify["webhook"], json=payload)
                    r.raise_for_status()
            except (httpx.HTTPError, BadRequest) as e:
                log.warning("webhook for run %s failed: %s", run["id"], e)
        emails = notify.get("emails") or []
        if emails and self.smtp_host:
            try:
                await asyncio.to_thread(self._send_mail, emails, job, run, url)
            except (OSError, smtplib.SMTPException) as e:
                log.warning("e-mail for run %s failed: %s", run["id"], e)

    def _send_mail(self, to: list[str], job: dict[str, Any], run: dict[str, Any], url: str) -> None:
        msg = EmailMessage()
        msg["Subject"] = f"[dsml] {job['name']}: run {run['id']} {run['state']}"
        msg["From"] = self.smtp_from
        msg["To"] = ", ".join(to)
        lines = [f"Job {job['name']} (owner {job['owner']}), run {run['id']}: {run['state']}."]
        if run["message"]:
            lines.append(run["message"])
        lines.append(f"Details and output: {url}")
        msg.set_content("\n".join(lines))
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=10) as smtp:
            if self.smtp_starttls:
                smtp.starttls()
            if self.smtp_user:
                smtp.login(self.smtp_user, self.smtp_password)
            smtp.send_message(msg)
