"""The assistant's pure parts: language and intent rules, masking, the breaker, reply cutting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mitra.assistant.intents import Rules, classify, language_of
from mitra.assistant.llm import CircuitBreaker
from mitra.assistant.pii import WITHHELD, Masker
from mitra.assistant.replies import cut_at_sentence, rupees


@pytest.mark.parametrize(
    ("text", "language", "intent"),
    [
        ("When is my next premium due?", "en", "premium_due"),
        ("मेरा अगला प्रीमियम कब है?", "hi", "premium_due"),
        ("mera premium kab hai", "hi-Latn", "premium_due"),
        ("hi, how do I pay my premium?", "en", "premium_payment"),
        ("please call me", "en", "agent_contact"),
        ("insaan se baat karni hai", "hi-Latn", "agent_contact"),
        ("एजेंट से बात करनी है", "hi", "agent_contact"),
        ("What is the meaning of life", "en", None),
    ],
)
def test_language_and_intent(text: str, language: str, intent: str | None) -> None:
    match = classify(text)
    assert (match.language, match.intent) == (language, intent)
    assert language_of(text) == language


def test_small_talk_loses_to_a_question() -> None:
    assert classify("hello, is my policy active?").intent == "policy_status"
    assert classify("hello").intent == "greeting"


def test_a_tenants_phrases_extend_the_rules_of_their_language_only() -> None:
    rules = Rules().extended({"hi-Latn": {"premium_due": ["paisa kab"]}, "xx": {"thanks": ["y"]}})
    assert classify("paisa kab dena hai", rules).intent == "premium_due"
    assert classify("paisa kab dena hai").intent is None
    assert "xx" not in rules.phrases


def test_masking_keeps_only_the_askers_own_details_in_the_reply() -> None:
    masker = Masker(own_names=["Ravi Kumar"], own_phones=["+91 98765 43210"],
                    own_emails=["ravi@example.com"], own_policies=["LIC-AB12345"])  # fmt: skip
    masked = masker.mask(
        "I am Ravi Kumar (9876543210, ravi@example.com), policy LIC-AB12345; my friend "
        "Meena Iyer is on 91234 56789 with 987654321. Premium 2450.50 due 12-12-2026."
    )
    for secret in ("Ravi", "9876543210", "ravi@", "LIC-AB12345", "Meena", "91234", "987654321"):
        assert secret not in masked
    assert "2450.50" in masked  # amounts and dates are not personal data
    assert "12-12-2026" in masked
    reply = masker.restore("[NAME_1]: [PHONE_1], [EMAIL_1], [POLICY_1]; [NAME_2] [PHONE_2] [X_1]")
    assert reply == (
        f"Ravi Kumar: 9876543210, ravi@example.com, LIC-AB12345; {WITHHELD} {WITHHELD} [X_1]"
    )
    # A placeholder the model made up stands for nothing: withheld.
    assert masker.restore("[POLICY_9]") == WITHHELD


def test_each_part_of_the_askers_name_is_masked_whole_in_any_case_and_either_script() -> None:
    masker = Masker(own_names=["Sunita Sharma", "Rahul Verma"])
    masked = masker.mask("this is sunita, SHARMA ji. मैं सुनीता हूँ; वर्मा जी? Sunitaben, Rahul's")
    for secret in ("sunita", "SHARMA", "सुनीता", "वर्मा", "Rahul"):
        assert secret not in masked
    assert "Sunitaben" in masked  # whole words only
    assert masker.restore("[NAME_1] [NAME_3]") == "sunita सुनीता"
    stored_in_hindi = Masker(own_names=["सुनीता शर्मा"])
    masked = stored_in_hindi.mask("main sunita hoon, Sharma; मैं सुनीता")
    for secret in ("sunita", "Sharma", "सुनीता"):
        assert secret not in masked


def test_the_breaker_opens_after_failures_in_the_window_and_half_opens_after_cool_down() -> None:
    now = [0.0]
    states: list[str] = []
    breaker = CircuitBreaker(2, window=10, cooldown=30, clock=lambda: now[0],
                             on_change=states.append)  # fmt: skip
    breaker.failed()
    now[0] = 11.0  # the first failure has left the window
    breaker.failed()
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()
    now[0] = 42.0
    assert breaker.allow()  # one trial
    assert not breaker.allow()  # and only one
    breaker.failed()
    assert not breaker.allow()
    now[0] = 80.0
    assert breaker.allow()
    breaker.released()  # the trial learnt nothing (a refusal, a cancellation): offered again
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.allow()
    assert states == ["open", "half_open", "open", "half_open", "closed"]


def test_replies_are_cut_at_a_sentence_and_rupees_grouped_the_indian_way() -> None:
    assert cut_at_sentence("One. Two three. Four five six.", 18) == "One. Two three."
    assert cut_at_sentence("प्रीमियम कल है। फिर अगले साल।", 20) == "प्रीमियम कल है।"
    assert cut_at_sentence("short", 40) == "short"
    assert rupees(Decimal("12345678.9")) == "₹1,23,45,678.90"
    assert rupees(Decimal("999")) == "₹999.00"
