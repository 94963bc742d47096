"""Personal data handling: what may leave the warehouse, and in what form."""

from __future__ import annotations

import re

IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b")


def mask_iban(iban: str | None) -> str:
    """Only the last four characters of an account number are ever shown."""
    if not iban:
        return ""
    return "*" * max(len(iban) - 4, 0) + iban[-4:]


def mask_ibans_in(text: str) -> str:
    """Mask anything that looks like an IBAN inside free text."""
    return IBAN_RE.sub(lambda m: mask_iban(m.group(0)), text)
