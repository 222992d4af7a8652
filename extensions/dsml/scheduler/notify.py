"""Notifications when runs end: e-mail through SMTP and JSON webhooks, each with the run URL.

A job's `notify` holds {"on": "failure" | "always" | "never", "emails": [...], "webhook": url}.
Sending never blocks the scheduler loop and a failed send is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage
from typing import Any

import httpx
from traitlets import Bool, Integer, Unicode
from traitlets.config import LoggingConfigurable

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
                async with httpx.AsyncClient(timeout=10) as client:
                    r = await client.post(notify["webhook"], json=payload)
                    r.raise_for_status()
            except httpx.HTTPError as e:
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
