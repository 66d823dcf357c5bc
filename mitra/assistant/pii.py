"""Personal data out of what goes to the LLM: placeholders in, the asker's own values back.

Phone numbers, emails and policy numbers are found by their shape; names when known (the
asker's and their agent's) and, for the rest, by the shape of capitalised words in a row. A
placeholder in the reply becomes its value again only when the value is the asker's own (or
their agent's name); any other is withheld, so a reply never carries someone else's details.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

WITHHELD = "[withheld]"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().-]{7,}\d(?![\w])")
# Policy numbers: letters and digits with at least three digits (LIC-8F2A91C0, 123456789).
_POLICY = re.compile(r"\b(?=[A-Za-z0-9/-]*\d{3})[A-Za-z0-9][A-Za-z0-9/-]{5,}\b")
# Names nobody told us of: two or more capitalised words in a row ("Arjun Singh"). A plan's
# name is caught too; masking too much costs the LLM a word, too little a stranger's name.
_NAME_LIKE = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b")
_DATE = re.compile(r"\d{1,4}[-/]\d{1,2}[-/]\d{1,4}")
_PLACEHOLDER = re.compile(r"\[(PHONE|EMAIL|POLICY|NAME)_(\d+)\]")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


@dataclass
class Masker:
    """One question's masking: `mask` it, send it, `restore` the reply."""

    own_names: Iterable[str] = ()
    own_phones: Iterable[str] = ()
    own_emails: Iterable[str] = ()
    own_policies: Iterable[str] = ()
    _values: dict[str, str] = field(default_factory=dict)
    _own: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._names = sorted({n.strip() for n in self.own_names if n and n.strip()}, key=len,
                             reverse=True)  # fmt: skip
        self._own = {
            *(n.casefold() for n in self._names),
            *(_digits(p)[-10:] for p in self.own_phones if p),
            *(e.casefold() for e in self.own_emails if e),
            *(p.casefold() for p in self.own_policies if p),
        }

    def mask(self, text: str) -> str:
        text = _EMAIL.sub(lambda m: self._hold("EMAIL", m.group()), text)
        text = _PHONE.sub(self._phone, text)
        text = _POLICY.sub(self._policy, text)
        for name in self._names:
            text = re.sub(re.escape(name), lambda m: self._hold("NAME", m.group()), text,
                          flags=re.IGNORECASE)  # fmt: skip
        return _NAME_LIKE.sub(lambda m: self._hold("NAME", m.group()), text)

    def restore(self, reply: str) -> str:
        def back(match: re.Match[str]) -> str:
            value = self._values.get(match.group())
            if value is None or not self._is_own(match.group(1), value):
                return WITHHELD
            return value

        return _PLACEHOLDER.sub(back, reply)

    def _phone(self, match: re.Match[str]) -> str:
        if len(_digits(match.group())) < 10:
            return match.group()  # an amount or a date, not a number to dial
        return self._hold("PHONE", match.group())

    def _policy(self, match: re.Match[str]) -> str:
        if _DATE.fullmatch(match.group()):
            return match.group()
        return self._hold("POLICY", match.group())

    def _hold(self, kind: str, value: str) -> str:
        for placeholder, held in self._values.items():
            if held == value and placeholder.startswith(f"[{kind}_"):
                return placeholder
        placeholder = f"[{kind}_{sum(p.startswith(f'[{kind}_') for p in self._values) + 1}]"
        self._values[placeholder] = value
        return placeholder

    def _is_own(self, kind: str, value: str) -> bool:
        if kind == "PHONE":
            return _digits(value)[-10:] in self._own
        return value.casefold() in self._own
