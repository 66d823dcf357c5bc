"""Which intent a customer's message has, by keyword and phrase rules per language.

Three languages are told apart: English, Hindi in Devanagari, and Hindi written in Latin letters
(the way most people type it on a phone). Rules are data (`Rules`), so a tenant's own phrases
can be laid over the built-in ones.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

EN = "en"
HI = "hi"
HI_LATN = "hi-Latn"
LANGUAGES = (EN, HI, HI_LATN)

POLICY_STATUS = "policy_status"
PREMIUM_DUE = "premium_due"
PREMIUM_PAYMENT = "premium_payment"
CLAIM_PROCESS = "claim_process"
AGENT_CONTACT = "agent_contact"
GREETING = "greeting"
THANKS = "thanks"
INTENTS = (
    AGENT_CONTACT, PREMIUM_PAYMENT, PREMIUM_DUE, POLICY_STATUS, CLAIM_PROCESS, GREETING, THANKS,
)  # fmt: skip
"""In order of precedence when two intents score the same."""
SMALL_TALK = frozenset({GREETING, THANKS})

_DEVANAGARI = re.compile(r"[\u0900-\u097F]")
_WORDS = re.compile(r"[^\w\u0900-\u097F]+")
# Words that are Hindi and not English: one of them makes a Latin-letter message Hindi.
_ROMAN_HINDI = frozenset(
    [
        "kab",
        "kya",
        "kitna",
        "kitni",
        "kitne",
        "batao",
        "bataiye",
        "bataye",
        "mera",
        "meri",
        "mere",
        "mujhe",
        "mujhko",
        "hai",
        "hain",
        "kaise",
        "kaisa",
        "karna",
        "karni",
        "karu",
        "karun",
        "kariye",
        "kijiye",
        "chahiye",
        "namaste",
        "namaskar",
        "dhanyavad",
        "dhanyawad",
        "shukriya",
        "baat",
        "insaan",
        "insan",
        "aap",
        "aapka",
        "kripya",
        "bhugtan",
        "kist",
        "kisht",
        "agli",
        "agla",
        "dava",
        "daawa",
        "jama",
        "bharna",
        "bharu",
        "bharun",
        "nahi",
        "kyun",
        "karo",
    ]
)

_BUILT_IN: dict[str, dict[str, tuple[str, ...]]] = {
    EN: {
        AGENT_CONTACT: ("agent", "call me", "talk to", "speak to", "human", "real person",
                        "representative", "call back", "callback"),
        PREMIUM_PAYMENT: ("pay", "payment", "how to pay", "how do i pay", "pay my premium",
                          "payment link", "pay online"),
        PREMIUM_DUE: ("premium due", "next premium", "due date", "when is my premium",
                      "premium", "due", "amount due", "how much is my premium"),
        POLICY_STATUS: ("policy status", "status of my policy", "my policy", "my policies",
                        "policy", "policies", "lapsed", "is my policy active"),
        CLAIM_PROCESS: ("claim", "file a claim", "claim process", "make a claim",
                        "death claim", "maturity claim"),
        GREETING: ("hello", "hi", "hey", "good morning", "good afternoon", "good evening"),
        THANKS: ("thank you", "thanks", "thank", "thx", "great thanks"),
    },
    HI: {
        AGENT_CONTACT: ("एजेंट", "इंसान", "कॉल करें", "कॉल कीजिए", "फोन करें", "फ़ोन करें",
                        "बात करनी", "बात करवा", "बात करना"),
        PREMIUM_PAYMENT: ("भुगतान", "पेमेंट", "कैसे भरें", "कैसे भरूं", "जमा करना", "जमा कैसे",
                          "भरना"),
        PREMIUM_DUE: ("प्रीमियम कब", "किस्त कब", "अगली किस्त", "देय", "ड्यू", "प्रीमियम",
                      "किस्त", "कितना प्रीमियम"),
        POLICY_STATUS: ("पॉलिसी की स्थिति", "पॉलिसी का स्टेटस", "स्थिति", "स्टेटस", "पॉलिसी",
                        "पालिसी"),
        CLAIM_PROCESS: ("क्लेम", "दावा"),
        GREETING: ("नमस्ते", "नमस्कार", "हेलो", "प्रणाम"),
        THANKS: ("धन्यवाद", "शुक्रिया"),
    },
    HI_LATN: {
        AGENT_CONTACT: ("agent", "agent se baat", "insaan se baat", "insan se baat",
                        "call karo", "call kijiye", "call kariye", "phone karo", "phone kijiye",
                        "baat karni", "baat karna"),
        PREMIUM_PAYMENT: ("payment kaise", "bhugtan", "kaise bharu", "kaise bharun",
                          "jama kaise", "pay kaise", "bharna", "payment"),
        PREMIUM_DUE: ("premium kab", "kist kab", "kisht kab", "agli kist", "agli kisht",
                      "due kab", "premium", "kist", "kisht", "kitna premium"),
        POLICY_STATUS: ("policy ka status", "policy status", "meri policy", "policy kaisi",
                        "policy", "status"),
        CLAIM_PROCESS: ("claim kaise", "claim", "dava", "daawa"),
        GREETING: ("namaste", "namaskar", "hello", "pranam"),
        THANKS: ("dhanyavad", "dhanyawad", "shukriya", "thanks"),
    },
}  # fmt: skip


@dataclass(frozen=True)
class Rules:
    """Phrases per language and intent. `extended` lays a tenant's phrases over these."""

    phrases: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=lambda: _BUILT_IN)

    def extended(self, extra: Mapping[str, Mapping[str, Sequence[str]]]) -> Rules:
        merged = {lang: dict(by_intent) for lang, by_intent in self.phrases.items()}
        for lang, by_intent in extra.items():
            for intent, phrases in by_intent.items():
                if lang in merged and intent in INTENTS:
                    merged[lang][intent] = (*merged[lang].get(intent, ()), *phrases)
        return Rules(merged)


@dataclass(frozen=True)
class Match:
    language: str
    intent: str | None
    score: int
    """Words of the matched phrases: 0 when nothing matched."""


def normalise(text: str) -> str:
    """Lower case, compatibility forms, words separated by single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(part for part in _WORDS.split(folded) if part)


def language_of(text: str) -> str:
    if _DEVANAGARI.search(text):
        return HI
    words = set(normalise(text).split())
    return HI_LATN if words & _ROMAN_HINDI else EN


def classify(text: str, rules: Rules | None = None) -> Match:
    """The best intent of `text`; small talk only when nothing else matched."""
    rules = rules or Rules()
    language = language_of(text)
    padded = f" {normalise(text)} "
    scores: dict[str, int] = {}
    # A Hindi speaker mixes in English words ("premium", "policy"): English rules count too.
    for lang in dict.fromkeys((language, EN)):
        for intent, phrases in rules.phrases.get(lang, {}).items():
            for phrase in phrases:
                if f" {normalise(phrase)} " in padded:
                    scores[intent] = scores.get(intent, 0) + len(phrase.split())
    ranked = sorted(
        scores.items(), key=lambda item: (item[0] in SMALL_TALK, -item[1], INTENTS.index(item[0]))
    )
    if not ranked:
        return Match(language, None, 0)
    intent, score = ranked[0]
    return Match(language, intent, score)
