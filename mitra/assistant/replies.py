"""What the assistant says, in the customer's language: fixed texts and their own policies."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from mitra.assistant.intents import (
    AGENT_CONTACT,
    CLAIM_PROCESS,
    EN,
    GREETING,
    HI,
    HI_LATN,
    POLICY_STATUS,
    PREMIUM_DUE,
    PREMIUM_PAYMENT,
    THANKS,
)

MAX_LISTED = 5


@dataclass(frozen=True)
class OwnPolicy:
    """One of the asker's own policies, as the assistant may tell it to them."""

    id: uuid.UUID
    number: str
    plan: str
    status: str
    next_due: date | None
    amount: Decimal
    frequency: str


_TEXTS: dict[str, dict[str, str]] = {
    EN: {
        GREETING: "Hello! I am your agent's assistant. Ask me about your policies, premium due "
        'dates, payments or claims, or say "agent" to talk to your agent.',
        THANKS: "You're welcome! Anything else, just ask.",
        CLAIM_PROCESS: "To make a claim: tell your agent, keep the policy document, the claim "
        "form, ID proof and bank details ready (and the death or hospital certificate for "
        "those claims). Your agent will guide you through each step.",
        "handoff": "I have asked your agent to reply to you. They will get back to you soon.",
        "fallback": "Sorry, I cannot answer that right now. I can tell you about your policies, "
        'premium due dates and claims, or say "agent" and your agent will reply.',
        "no_policies": "I could not find any policy in your name. Your agent can help: say "
        '"agent".',
        "policies": "Your policies:",
        "due": "Your next premium:",
        "payment": "To pay your premium:",
        "payment_later": "Your agent will send you a payment link.",
        "pay_link": "Pay here: {url}",
        "links_note": "Pay securely through the link; your policy is updated as soon as the "
        "payment is received.",
        "policy_line": "{number} ({plan}): {status}, next premium {amount} due {due}",
        "due_line": "{number} ({plan}): {amount} due {due}",
        "no_due": "no premium due",
        "to_agent": "Handed over to your agent.",
        "to_bot": "The assistant is answering again.",
    },
    HI: {
        GREETING: "नमस्ते! मैं आपके एजेंट का सहायक हूँ। अपनी पॉलिसी, प्रीमियम की तारीख, भुगतान या "
        'क्लेम के बारे में पूछें, या एजेंट से बात के लिए "एजेंट" लिखें।',
        THANKS: "आपका स्वागत है! और कुछ हो तो पूछिए।",
        CLAIM_PROCESS: "क्लेम के लिए: अपने एजेंट को बताएं, पॉलिसी के कागज़, क्लेम फॉर्म, पहचान "
        "पत्र और बैंक विवरण तैयार रखें। आपका एजेंट हर कदम पर मदद करेगा।",
        "handoff": "मैंने आपके एजेंट को बता दिया है। वे जल्द ही आपको जवाब देंगे।",
        "fallback": "माफ़ कीजिए, मैं अभी इसका जवाब नहीं दे सकता। मैं आपकी पॉलिसी, प्रीमियम की "
        'तारीख और क्लेम के बारे में बता सकता हूँ, या "एजेंट" लिखें।',
        "no_policies": 'आपके नाम पर कोई पॉलिसी नहीं मिली। आपका एजेंट मदद करेगा: "एजेंट" लिखें।',
        "policies": "आपकी पॉलिसी:",
        "due": "आपका अगला प्रीमियम:",
        "payment": "प्रीमियम भरने के लिए:",
        "payment_later": "आपका एजेंट आपको भुगतान का लिंक भेजेगा।",
        "pay_link": "यहाँ भुगतान करें: {url}",
        "links_note": "लिंक से सुरक्षित भुगतान करें; भुगतान मिलते ही आपकी पॉलिसी अपडेट हो जाएगी।",
        "policy_line": "{number} ({plan}): {status}, अगला प्रीमियम {amount}, तारीख {due}",
        "due_line": "{number} ({plan}): {amount}, तारीख {due}",
        "no_due": "कोई प्रीमियम बाकी नहीं",
        "to_agent": "बातचीत आपके एजेंट को सौंपी गई।",
        "to_bot": "सहायक फिर से जवाब दे रहा है।",
    },
    HI_LATN: {
        GREETING: "Namaste! Main aapke agent ka sahayak hoon. Apni policy, premium ki tareekh, "
        'payment ya claim ke baare mein poochhiye, ya "agent" likhiye.',
        THANKS: "Aapka swagat hai! Aur kuch ho to poochhiye.",
        CLAIM_PROCESS: "Claim ke liye: apne agent ko bataiye, policy ke kagaz, claim form, "
        "ID proof aur bank details taiyaar rakhiye. Aapka agent har kadam par madad karega.",
        "handoff": "Maine aapke agent ko bata diya hai. Woh jaldi aapko jawab denge.",
        "fallback": "Maaf kijiye, main abhi iska jawab nahi de sakta. Main aapki policy, premium "
        'ki tareekh aur claim ke baare mein bata sakta hoon, ya "agent" likhiye.',
        "no_policies": "Aapke naam par koi policy nahi mili. Aapka agent madad karega: "
        '"agent" likhiye.',
        "policies": "Aapki policy:",
        "due": "Aapka agla premium:",
        "payment": "Premium bharne ke liye:",
        "payment_later": "Aapka agent aapko payment link bhejega.",
        "pay_link": "Yahan payment kijiye: {url}",
        "links_note": "Link se surakshit payment kijiye; payment milte hi aapki policy update "
        "ho jayegi.",
        "policy_line": "{number} ({plan}): {status}, agla premium {amount}, tareekh {due}",
        "due_line": "{number} ({plan}): {amount}, tareekh {due}",
        "no_due": "koi premium baaki nahi",
        "to_agent": "Baatcheet aapke agent ko saunp di gayi.",
        "to_bot": "Sahayak phir se jawab de raha hai.",
    },
}

_STATUS_HI = {
    "active": "चालू", "grace": "छूट अवधि में", "lapsed": "बंद (लैप्स)", "pending": "प्रक्रिया में",
    "matured": "परिपक्व", "surrendered": "सरेंडर",
}  # fmt: skip


def text(language: str, key: str) -> str:
    return _TEXTS.get(language, _TEXTS[EN]).get(key) or _TEXTS[EN][key]


def rupees(amount: Decimal) -> str:
    """₹ with Indian digit grouping: ₹1,25,000.00."""
    whole, _, paise = f"{amount:.2f}".partition(".")
    head, tail = whole[:-3], whole[-3:]
    groups: list[str] = []
    while len(head) > 2:
        groups.insert(0, head[-2:])
        head = head[:-2]
    if head:
        groups.insert(0, head)
    return "₹" + ",".join([*groups, tail]) + "." + paise


def _day(value: date | None, language: str) -> str:
    if value is None:
        return "-"
    return value.strftime("%d %b %Y") if language == EN else value.strftime("%d-%m-%Y")


def _status(status: str, language: str) -> str:
    return _STATUS_HI.get(status, status) if language == HI else status


def fixed(language: str, intent: str) -> str | None:
    """The answer to an intent that needs no data (greeting, thanks, claims)."""
    if intent in (GREETING, THANKS, CLAIM_PROCESS):
        return text(language, intent)
    return None


def payable(policies: Sequence[OwnPolicy]) -> list[OwnPolicy]:
    """The policies a premium_payment answer lists with a premium due (and may link)."""
    return [p for p in list(policies)[:MAX_LISTED] if p.next_due is not None]


def about_policies(
    language: str,
    intent: str,
    policies: Sequence[OwnPolicy],
    links: Mapping[uuid.UUID, str] | None = None,
) -> str:
    """The asker's own policies as the intent asks for them: a short list, or none. With
    `links` (policy id: payment link URL), a premium_payment answer gives each its link; a
    policy without one keeps the promise that the agent will send it."""
    if not policies:
        return text(language, "no_policies")
    shown = list(policies)[:MAX_LISTED]
    lines: list[str] = []
    if intent == POLICY_STATUS:
        lines.append(text(language, "policies"))
        for p in shown:
            lines.append("• " + _line(language, "policy_line", p))
    else:
        due = payable(policies)
        lines.append(text(language, "payment" if intent == PREMIUM_PAYMENT else "due"))
        if not due:
            lines.append(text(language, "no_due"))
        links = links if intent == PREMIUM_PAYMENT and links else {}
        for p in due:
            lines.append("• " + _line(language, "due_line", p))
            if p.id in links:
                lines.append("  " + text(language, "pay_link").format(url=links[p.id]))
        if intent == PREMIUM_PAYMENT and due and all(p.id in links for p in due):
            lines.append(text(language, "links_note"))
        elif intent == PREMIUM_PAYMENT:
            lines.append(text(language, "payment_later"))
    return "\n".join(lines)


def _line(language: str, key: str, policy: OwnPolicy) -> str:
    return text(language, key).format(
        number=policy.number,
        plan=policy.plan,
        status=_status(policy.status, language),
        amount=rupees(policy.amount),
        due=_day(policy.next_due, language),
    )


DATA_INTENTS = frozenset({POLICY_STATUS, PREMIUM_DUE, PREMIUM_PAYMENT})
HANDOFF_INTENTS = frozenset({AGENT_CONTACT})


def cut_at_sentence(reply: str, limit: int) -> str:
    """`reply` within `limit` characters, ended at the last sentence end that fits."""
    if len(reply) <= limit:
        return reply
    head = reply[:limit]
    ends = [head.rfind(mark) for mark in (". ", "! ", "? ", "। ", "\n")]
    for mark in (".", "!", "?", "।"):
        if head.endswith(mark):
            ends.append(len(head) - 1)
    cut = max(ends)
    if cut <= 0:
        return head.rstrip() + "…"
    return head[: cut + 1].rstrip()
