"""Find and redact personal data in text: e-mail addresses, phone numbers, IPv4 addresses, payment cards.

Policy:
- e-mails -> <EMAIL>; phone numbers with 7-15 digits in international (+CC ...) or US
  ("(212) 555-0199", "415-555-0132") form -> <PHONE>; years, dates, prices and other plain
  numbers are left alone because they never have the grouping a phone number has.
- every IPv4 address -> <IP>, private and reserved ranges included: an internal address next
  to a host name still describes someone's network, and the model gains nothing from it.
  Dotted quads that read as version numbers ("v1.2.3.4", "version 10.0.0.1", or part of a
  longer dotted run like "1.2.3.4.5") are not addresses and stay.
- 13-19 digit numbers (spaces or dashes allowed) passing the Luhn check -> <CARD>.
"""
from __future__ import annotations

import re
from collections import Counter

PLACEHOLDERS = {"email": "<EMAIL>", "card": "<CARD>", "ip": "<IP>", "phone": "<PHONE>"}
# Earlier kinds win overlaps: an e-mail may contain digits, a card number may look like a phone.
_PRIORITY = {"email": 0, "card": 1, "ip": 2, "phone": 3}

_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
_CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_RE = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\.?\d)(?![A-Za-z_])")
_VERSION_CONTEXT_RE = re.compile(r"\b(?:version|release|ver|build|firmware)\.?\s*$", re.I)
_PHONE_RES = (
    # International: +CC then 2-6 digit groups separated by a space, dot or dash, optional (area).
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}(?!\d)"),
    # US (NANP: area code and exchange start with 2-9, which rules out most counts and ranges).
    # With the area code in parentheses: (212) 555-0199
    re.compile(r"(?<![\w(])\([2-9]\d{2}\)[ .-]?[2-9]\d{2}[ .-]\d{4}(?!\d)"),
    # 3-3-4 with one separator style: 415-555-0132, 415.555.0132, 415 555 0132
    re.compile(r"(?<![\w.-])[2-9]\d{2}([-. ])[2-9]\d{2}\1\d{4}(?![\w-]|\.\d)"),
)
_MIN_PHONE_DIGITS, _MAX_PHONE_DIGITS = 7, 15


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _candidates(text: str) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []
    for m in _EMAIL_RE.finditer(text):
        found.append(("email", m.start(), m.end()))
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _luhn_ok(digits):
            found.append(("card", m.start(), m.end()))
    for m in _IPV4_RE.finditer(text):
        if not _VERSION_CONTEXT_RE.search(text[max(0, m.start() - 12) : m.start()]):
            found.append(("ip", m.start(), m.end()))
    for pattern in _PHONE_RES:
        for m in pattern.finditer(text):
            n_digits = sum(ch.isdigit() for ch in m.group())
            if _MIN_PHONE_DIGITS <= n_digits <= _MAX_PHONE_DIGITS:
                found.append(("phone", m.start(), m.end()))
    return found


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """Non-overlapping PII spans (kind, start, end) sorted by start; kinds: email, card, ip, phone."""
    chosen: list[tuple[str, int, int]] = []
    claimed = bytearray(len(text))
    # Higher-priority and then longer spans claim their characters first.
    for kind, start, end in sorted(_candidates(text), key=lambda c: (_PRIORITY[c[0]], c[1] - c[2], c[1])):
        if not any(claimed[start:end]):
            claimed[start:end] = b"\x01" * (end - start)
            chosen.append((kind, start, end))
    return sorted(chosen, key=lambda c: c[1])


def redact_pii(text: str) -> tuple[str, Counter]:
    """Replace every span from `find_pii` by its placeholder; returns (redacted text, count per kind)."""
    spans = find_pii(text)
    counts: Counter = Counter(kind for kind, _, _ in spans)
    if not spans:
        return text, counts
    parts: list[str] = []
    cursor = 0
    for kind, start, end in spans:
        parts.append(text[cursor:start])
        parts.append(PLACEHOLDERS[kind])
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts), counts
