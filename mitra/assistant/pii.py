"""Personal data out of what goes to the LLM: placeholders in, the asker's own values back.

Phone numbers, emails and policy numbers are found by their shape; names when known (the
asker's and their agent's: the full name, and each part of it on its own, in any case, in the
script it is stored in or, loosely transliterated, in the other of Latin and Devanagari) and,
for the rest, by the shape of capitalised words in a row. A placeholder in the reply becomes
its value again only when the value is the asker's own (or their agent's name); any other is
withheld, so a reply never carries someone else's details.
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
# A word: Python's \w stops at Indic vowel signs (ि, ा are marks, not letters), so the Indic
# blocks count as word characters whole.
_WORD_CHARS = r"\w\u0900-\u0DFF"
_WORD = re.compile(f"[{_WORD_CHARS}]+")
_NAME_PART_SPLIT = re.compile(f"[^{_WORD_CHARS}]+")
# Shorter name parts ("S.", "K") would hide every "a" or "s" the asker writes; shorter loose
# keys would match unrelated words across scripts.
_MIN_PART = 2
_MIN_LOOSE = 3
_PLACEHOLDER = re.compile(r"\[(PHONE|EMAIL|POLICY|NAME)_(\d+)\]")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _table(letters: str, sounds: str) -> dict[str, str]:
    return dict(zip(letters, sounds.split(), strict=True))


_CONSONANTS = _table(
    "कखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसहळ",
    "k kh g gh n ch chh j jh n t th d dh n t th d dh n p ph b bh m y r l v sh sh s h l",
)
_VOWELS = _table("अआइईउऊऋएऐओऔऑ", "a a i i u u ri e ai o au o")
_SIGNS = _table("ािीुूृेैोौॉॅंँः", "a i i u u ri e ai o au o e n n h")
_VIRAMA, _NUKTA = "\u094d", "\u093c"
_LOOSE = [("ee", "i"), ("ii", "i"), ("oo", "u"), ("uu", "u"), ("w", "v"), ("ph", "f"),
          ("ng", "n"), ("ai", "e"), ("au", "o")]  # fmt: skip


def _romanised(word: str) -> str:
    """Devanagari in plain Latin letters, as names are spelt in India (सुनीता: sunita)."""
    out: list[str] = []
    for index, ch in enumerate(word):
        if ch in _CONSONANTS:
            out.append(_CONSONANTS[ch])
            after = word[index + 1 : index + 2]
            if after not in _SIGNS or after in "ंँः":
                out.append("" if after in (_VIRAMA, _NUKTA) else "a")  # the inherent vowel
        elif ch in _VOWELS:
            out.append(_VOWELS[ch])
        elif ch in _SIGNS:
            out.append(_SIGNS[ch])
        elif ch not in (_VIRAMA, _NUKTA):
            out.append(ch.lower())
    return "".join(out)


def _loose(word: str) -> str:
    """A spelling-blind key of a name: Sharma, sharma and शर्मा give one key, as do Verma and
    वर्मा (vowel length, a written schwa and e/a are what spellings of one name differ in)."""
    key = _romanised(word).casefold()
    for spelt, said in _LOOSE:
        key = key.replace(spelt, said)
    key = key[:1] + re.sub("[ae]", "", key[1:])
    return re.sub(r"(.)\1+", r"\1", key)


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
        parts = {
            part.casefold()
            for name in self._names
            for part in _NAME_PART_SPLIT.split(name)
            if len(part) >= _MIN_PART
        }
        self._name_parts = parts
        self._loose_parts = {key for key in map(_loose, parts) if len(key) >= _MIN_LOOSE}
        self._own = {
            *(n.casefold() for n in self._names),
            *parts,
            *(_digits(p)[-10:] for p in self.own_phones if p),
            *(e.casefold() for e in self.own_emails if e),
            *(p.casefold() for p in self.own_policies if p),
        }

    def mask(self, text: str) -> str:
        text = _EMAIL.sub(lambda m: self._hold("EMAIL", m.group()), text)
        text = _PHONE.sub(self._phone, text)
        text = _POLICY.sub(self._policy, text)
        for name in self._names:
            whole = f"(?<![{_WORD_CHARS}]){re.escape(name)}(?![{_WORD_CHARS}])"
            text = re.sub(whole, lambda m: self._hold("NAME", m.group()), text,
                          flags=re.IGNORECASE)  # fmt: skip
        if self._name_parts:
            text = _WORD.sub(self._name_part, text)
        return _NAME_LIKE.sub(lambda m: self._hold("NAME", m.group()), text)

    def restore(self, reply: str) -> str:
        def back(match: re.Match[str]) -> str:
            value = self._values.get(match.group())
            if value is None or not self._is_own(match.group(1), value):
                return WITHHELD
            return value

        return _PLACEHOLDER.sub(back, reply)

    def _name_part(self, match: re.Match[str]) -> str:
        """A part of the asker's (or their agent's) name on its own: "this is sunita"."""
        word = match.group()
        if word.casefold() in self._name_parts or _loose(word) in self._loose_parts:
            self._own.add(word.casefold())  # as the asker wrote it: theirs to get back
            return self._hold("NAME", word)
        return word

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
