"""Email and SMS templates: subject, text and HTML, with HTML-escaped parameters."""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template
from typing import Any


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    text: str
    html: str


def email_templates() -> dict[str, EmailTemplate]:
    return {
        "verify_email": EmailTemplate(
            subject="Confirm your HotSpot email",
            text=(
                "Hi $display_name,\n\nConfirm your email address by opening this link:\n"
                "$link\n\nOr use this token in the app: $token\n\n"
                "The link is valid for $valid_hours hours. If you did not sign up, ignore this mail.\n"
            ),
            html=(
                "<p>Hi $display_name,</p><p>Confirm your email address: "
                '<a href="$link">confirm</a>.</p><p>Token: <code>$token</code></p>'
                "<p>The link is valid for $valid_hours hours.</p>"
            ),
        ),
        "password_reset": EmailTemplate(
            subject="Reset your HotSpot password",
            text=(
                "Hi $display_name,\n\nReset your password by opening this link:\n$link\n\n"
                "Or use this token in the app: $token\n\nThe link is valid for $valid_minutes minutes "
                "and works once. If you did not ask for it, ignore this mail.\n"
            ),
            html=(
                "<p>Hi $display_name,</p><p>Reset your password: "
                '<a href="$link">reset</a>.</p><p>Token: <code>$token</code></p>'
                "<p>The link is valid for $valid_minutes minutes and works once.</p>"
            ),
        ),
    }


def sms_templates() -> dict[str, str]:
    return {
        "phone_code": "Your HotSpot code is $code. It expires in $valid_minutes minutes.",
    }


def render_email(name: str, params: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of a template; KeyError for an unknown template or parameter."""
    template = email_templates()[name]
    escaped = {k: html.escape(str(v)) for k, v in params.items()}
    return (
        Template(template.subject).substitute(params),
        Template(template.text).substitute(params),
        Template(template.html).substitute(escaped),
    )


def render_sms(name: str, params: dict[str, Any]) -> str:
    return Template(sms_templates()[name]).substitute(params)
