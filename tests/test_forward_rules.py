"""The pure rules of forwarded replies: which reply is forwarded, the keys that make a forward happen once, what the
owner receives (bounded, GSM-7/UCS-2 aware, header-safe) and what a server's answer does to a forward."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from callbuddy_pbx.config.forwarding import ForwardTarget
from callbuddy_pbx.message_text import encoding_of, segments
from callbuddy_pbx.recovery.forward_rules import (
    MAX_AGE_S,
    RETRY_MAX_S,
    RETRY_MIN_S,
    Outcome,
    Reply,
    SendAnswer,
    email_message,
    forward_key,
    http_answer,
    is_forwarded,
    message_id,
    next_step,
    retry_delay,
    signature,
    sms_text,
    smtp_answer,
    webhook_body,
)
from callbuddy_pbx.recovery.policy import Keyword, classify_inbound

OWNER = ForwardTarget("email", "owner@glow.example")
T0 = 1_795_000_000.0


def reply(text: str = "Can I come at 3?", caller: str = "+15557654321") -> Reply:
    return Reply(7, "Glow Salon", caller, "+15550001000", text, T0)


@pytest.mark.parametrize(
    ("text", "business_known", "forwarded"),
    [
        ("Can I come at 3?", True, True),
        ("STOP", True, False),
        ("Stop texting me", True, False),
        ("START", True, False),
        ("help", True, False),
        (" \n ", True, False),
        ("Can I come at 3?", False, False),
    ],
)
def test_only_replies_in_words_to_a_business_are_forwarded(text: str, business_known: bool, forwarded: bool) -> None:
    assert is_forwarded(classify_inbound(text), text, business_known) is forwarded


def test_keyword_alone_decides_not_the_words() -> None:
    assert not is_forwarded(Keyword.HELP, "anything", True)
    assert is_forwarded(Keyword.OTHER, "x", True)


def test_a_forward_key_is_the_same_for_the_same_reply_and_target_and_differs_otherwise() -> None:
    key = forward_key("Glow Salon", "sim", "id:SM1", OWNER)
    assert key == forward_key("Glow Salon", "sim", "id:SM1", ForwardTarget("email", "owner@glow.example"))
    others = {
        forward_key("Glow Salon", "sim", "id:SM2", OWNER),  # another reply
        forward_key("Glow Salon", "twilio", "id:SM1", OWNER),  # the same id on another gateway
        forward_key("Bolt Barbers", "sim", "id:SM1", OWNER),
        forward_key("Glow Salon", "sim", "id:SM1", ForwardTarget("email", "desk@glow.example")),
        forward_key("Glow Salon", "sim", "id:SM1", ForwardTarget("webhook", "owner@glow.example")),
    }
    assert key not in others and len(others) == 5
    assert key.startswith("forward:") and len(key) == len("forward:") + 40


def test_the_message_id_is_made_from_the_key_and_the_senders_domain() -> None:
    key = forward_key("Glow Salon", "sim", "id:SM1", OWNER)
    assert message_id(key, "callbuddy@glow.example") == f"<{key.replace(':', '.')}@glow.example>"
    assert message_id(key, "a@b.example") != message_id(
        forward_key("Glow Salon", "sim", "id:SM2", OWNER), "a@b.example"
    )


def test_a_short_reply_is_texted_whole() -> None:
    assert sms_text(reply()) == "Reply from +15557654321: Can I come at 3?"


def test_a_long_gsm7_reply_is_cut_to_three_texts_and_stays_gsm7() -> None:
    text = sms_text(reply("word " * 400))
    assert segments(text) == 3 and encoding_of(text) == "GSM-7"
    assert text.endswith("...") and text.startswith("Reply from +15557654321: word word")
    assert segments(text.removesuffix("...") + " word...") > 3  # as long as it could be


def test_a_long_ucs2_reply_is_cut_to_three_texts_of_ucs2() -> None:
    text = sms_text(reply("Can I come at 3? 🙂 " * 60))
    assert encoding_of(text) == "UCS-2" and segments(text) == 3 and text.endswith("…")


def test_gsm7_extension_characters_count_twice_when_cutting() -> None:
    text = sms_text(reply("€" * 400))
    assert segments(text) == 3 and encoding_of(text) == "GSM-7"


def test_control_characters_are_dropped_and_a_long_caller_is_bounded() -> None:
    text = sms_text(reply("Hi\x00\x1b[31m there\u202e", caller="1" * 200))
    assert "\x00" not in text and "\x1b" not in text and "\u202e" not in text
    assert len(text.split(":")[0]) < 60


def test_an_email_cannot_be_given_headers_by_the_caller() -> None:
    message = email_message(
        reply("Hi", caller="+1555\r\nBcc: everyone@example.com"), "forward:abc", "owner@glow.example", "a@glow.example"
    )
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert message["Date"] == "Wed, 18 Nov 2026 11:06:40 +0000"
    assert message["Message-ID"] == "<forward.abc@glow.example>"


def test_the_email_says_when_in_the_businesss_time_zone() -> None:
    body = email_message(reply(), "forward:abc", "o@glow.example", "a@glow.example", "America/New_York").get_content()
    assert "at 2026-11-18 06:06 EST:" in body and "Can I come at 3?" in body


def test_the_webhook_body_is_stable_and_its_signature_is_an_hmac_of_the_exact_bytes() -> None:
    body = webhook_body(reply(), "forward:abc")
    assert body == webhook_body(reply(), "forward:abc")
    assert json.loads(body) == {
        "event": "reply",
        "forward_id": "forward:abc",
        "reply_id": 7,
        "business": "Glow Salon",
        "caller": "+15557654321",
        "to": "+15550001000",
        "text": "Can I come at 3?",
        "received_at": "2026-11-18T11:06:40+00:00",
    }
    expected = hmac.new(b"whsec-0123456789abcdef", body, hashlib.sha256).hexdigest()
    assert signature("whsec-0123456789abcdef", body) == f"sha256={expected}"
    assert signature("another-secret-0123", body) != signature("whsec-0123456789abcdef", body)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SENT),
        (204, Outcome.SENT),
        (301, Outcome.RETRY),
        (400, Outcome.FAILED),
        (401, Outcome.FAILED),
        (404, Outcome.FAILED),
        (408, Outcome.RETRY),
        (410, Outcome.FAILED),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
    ],
)
def test_a_webhooks_status_decides(status: int, outcome: Outcome) -> None:
    assert http_answer(status).outcome is outcome


def test_a_webhooks_retry_after_is_taken_bounded() -> None:
    assert http_answer(429, "30").retry_after_s == 30.0
    assert http_answer(503, "999999").retry_after_s == RETRY_MAX_S
    assert http_answer(503, "soon").retry_after_s is None
    assert http_answer(503, "nan").retry_after_s is None


def test_only_a_permanent_refusal_of_the_recipient_or_message_fails_an_email() -> None:
    assert smtp_answer(550, "no such mailbox", True).outcome is Outcome.FAILED
    assert smtp_answer(450, "mailbox busy", True).outcome is Outcome.RETRY
    assert smtp_answer(535, "authentication failed", False).outcome is Outcome.RETRY
    assert smtp_answer(421, "closing", False).outcome is Outcome.RETRY


def test_retries_wait_longer_each_time_up_to_a_bound() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [RETRY_MIN_S, RETRY_MIN_S * 2, RETRY_MIN_S * 4, RETRY_MIN_S * 8]
    assert retry_delay(50) == RETRY_MAX_S


def test_next_step_sent_failed_retried_and_given_up_after_a_day() -> None:
    assert next_step(SendAnswer(Outcome.SENT), 0, T0, T0 + 1).state == "sent"
    failed = next_step(SendAnswer(Outcome.FAILED, "HTTP 404"), 2, T0, T0 + 1)
    assert (failed.state, failed.attempts, failed.error) == ("failed", 3, "HTTP 404")
    retried = next_step(SendAnswer(Outcome.RETRY, "HTTP 503"), 1, T0, T0 + 10)
    assert (retried.state, retried.attempts, retried.next_attempt_at) == ("pending", 2, T0 + 10 + RETRY_MIN_S * 2)
    paused = next_step(SendAnswer(Outcome.RETRY, "HTTP 429", retry_after_s=42.0), 0, T0, T0)
    assert paused.next_attempt_at == T0 + 42.0
    late = next_step(SendAnswer(Outcome.RETRY, "SMTP down"), 30, T0, T0 + MAX_AGE_S)
    assert late.state == "failed" and late.error == "not forwarded within 24 h: SMTP down"
