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
        # An email change: the link goes to the new address, the notices to the old one.
        "verify_email_change": EmailTemplate(
            subject="Confirm your new HotSpot email",
            text=(
                "Hi $display_name,\n\nYou asked to use this address for your HotSpot account. "
                "Confirm it by opening this link:\n$link\n\nOr use this token in the app: $token\n\n"
                "The link is valid for $valid_hours hours. Until you confirm, the account keeps "
                "its old address. If you did not ask for this, ignore this mail.\n"
            ),
            html=(
                "<p>Hi $display_name,</p><p>You asked to use this address for your HotSpot "
                'account. Confirm it: <a href="$link">confirm</a>.</p>'
                "<p>Token: <code>$token</code></p><p>The link is valid for $valid_hours hours. "
                "If you did not ask for this, ignore this mail.</p>"
            ),
        ),
        "email_change_requested": EmailTemplate(
            subject="Your HotSpot email is being changed",
            text=(
                "Hi $display_name,\n\nSomeone asked to change the email of your HotSpot account "
                "to $new_email. The change completes when the link mailed there is opened.\n\n"
                "If this wasn't you, reset your password now: $link\n"
                "A new password cancels the change and signs out every device.\n"
            ),
            html=(
                "<p>Hi $display_name,</p><p>Someone asked to change the email of your HotSpot "
                "account to <strong>$new_email</strong>. The change completes when the link "
                "mailed there is opened.</p><p>If this wasn't you, "
                '<a href="$link">reset your password now</a>: a new password cancels the change '
                "and signs out every device.</p>"
            ),
        ),
        "email_changed": EmailTemplate(
            subject="Your HotSpot email was changed",
            text=(
                "Hi $display_name,\n\nThe email of your HotSpot account is now $new_email; "
                "this address no longer signs in or receives password resets.\n\n"
                "If this wasn't you, contact HotSpot support at once: someone else may control "
                "your account.\n"
            ),
            html=(
                "<p>Hi $display_name,</p><p>The email of your HotSpot account is now "
                "<strong>$new_email</strong>; this address no longer signs in or receives "
                "password resets.</p><p>If this wasn't you, contact HotSpot support at once: "
                "someone else may control your account.</p>"
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
        # Campaign templates: they may use only the campaign parameters (see campaign_params).
        "we_miss_you": EmailTemplate(
            subject="We miss you on HotSpot, $display_name",
            text=(
                "Hi $display_name,\n\nIt has been a while. Your friends are still posting: "
                "come and see what is new.\n$app_link\n"
            ),
            html=(
                "<p>Hi $display_name,</p><p>It has been a while. Your friends are still posting: "
                '<a href="$app_link">come and see what is new</a>.</p>'
            ),
        ),
        # Notification mail is not transactional: the outreach worker appends the
        # recipient's unsubscribe footer (the job carries the link).
        "notification": EmailTemplate(
            subject="$title",
            text="Hi $display_name,\n\n$title\n$body\n\nSee it on HotSpot: $app_link\n",
            html=(
                "<p>Hi $display_name,</p><p><strong>$title</strong></p><p>$body</p>"
                '<p><a href="$app_link">See it on HotSpot</a></p>'
            ),
        ),
        "test_message": EmailTemplate(
            subject="HotSpot test message",
            text="Hi $display_name,\n\nThis is a test message from HotSpot: mail reaches you.\n",
            html="<p>Hi $display_name,</p><p>This is a test message from HotSpot: mail reaches you.</p>",
        ),
    }


def sms_templates() -> dict[str, str]:
    return {
        "phone_code": "Your HotSpot code is $code. It expires in $valid_minutes minutes.",
        "we_miss_you": "Hi $display_name, it has been a while! See what is new on HotSpot: $app_link",
        "notification": "HotSpot: $summary",
        "test_message": "HotSpot test message: SMS reaches you.",
    }


def campaign_params(display_name: str, username: str, app_link: str) -> dict[str, str]:
    """The parameters every campaign message may use."""
    return {"display_name": display_name, "username": username, "app_link": app_link}


def sample_params(app_link: str) -> dict[str, Any]:
    """Stand-in values for every parameter of every template, for test sends."""
    return {
        **campaign_params("Test User", "test_user", app_link),
        "link": app_link, "token": "TEST-TOKEN", "valid_hours": 48, "valid_minutes": 60,
        "code": "123456", "new_email": "t***@example.com", "title": "Test User mentioned you",
        "body": "@test_user look at this",
        "summary": "Test User mentioned you: @test_user look at this",
    }


def render_email_template(template: EmailTemplate, params: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html); KeyError for a missing parameter, ValueError for a bad '$'."""
    escaped = {k: html.escape(str(v)) for k, v in params.items()}
    return (
        Template(template.subject).substitute(params),
        Template(template.text).substitute(params),
        Template(template.html).substitute(escaped),
    )


def render_email(name: str, params: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of a template; KeyError for an unknown template or parameter."""
    return render_email_template(email_templates()[name], params)


def render_sms(name: str, params: dict[str, Any]) -> str:
    return Template(sms_templates()[name]).substitute(params)


def render_sms_text(text: str, params: dict[str, Any]) -> str:
    return Template(text).substitute(params)


def text_to_html(text: str) -> str:
    """An HTML body for a campaign given as plain text only."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def with_unsubscribe(text: str, html_body: str, link: str) -> tuple[str, str]:
    """Text and HTML with the recipient's unsubscribe footer appended."""
    footer = f"\n\n--\nYou get this because you have a HotSpot account. Unsubscribe: {link}\n"
    html_footer = (
        '<hr><p style="font-size:small;color:#666">You get this because you have a HotSpot '
        f'account. <a href="{html.escape(link)}">Unsubscribe</a></p>'
    )
    return text.rstrip("\n") + footer, html_body + html_footer
