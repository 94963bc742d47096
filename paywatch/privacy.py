"""Personal data handling: what may leave the warehouse, and in what form.

The one home of masking: reports, error messages, REASON.txt and logs all mask here; the
account-number mask itself is `detectors.privacy.mask_iban` (the lowest layer, so that
detectors — which may not import paywatch — show accounts exactly as every report does).
"""

from __future__ import annotations

import re

from detectors.privacy import mask_iban  # the one masking of an account number (detectors show it too)

# IBAN-shaped (ISO 13616): two letters, two check digits, 11-30 letters or digits, so 15-34
# characters; compact, or printed in groups of four with single spaces; any case. Both ends
# must be a boundary so that longer tokens (a sha256) are not taken for accounts.
_A, _N = "[A-Za-z0-9]", "[0-9]"
_HEAD = rf"(?<!{_A})[A-Za-z]{{2}}{_N}{{2}}"
_COMPACT = rf"{_HEAD}{_A}{{11,30}}(?!{_A})"
# spaced: at least 15 characters, i.e. three groups of four (then 1-3 more), or two and three
_SPACED = rf"{_HEAD}(?:(?: {_A}{{4}}){{3,7}}(?: {_A}{{1,3}})?|(?: {_A}{{4}}){{2}} {_A}{{3}})(?!{_A})"
IBAN_RE = re.compile(rf"{_SPACED}|{_COMPACT}")
# A stricter net for a single received value: an IBAN anywhere inside it, glued to other
# text or not, spaces ignored.
_IBAN_INSIDE_RE = re.compile(rf"[A-Za-z]{{2}}{_N}{{2}}{_A}{{11}}")

# Columns whose values never appear in a message, masked or not (docs/extract-format.md PA0009).
BANK_COLUMNS = {"PA0009.csv": frozenset({"IBAN", "BANKS"})}
WITHHELD = "(value withheld)"


def mask_ibans_in(text: str) -> str:
    """Mask anything that looks like an IBAN inside free text."""
    return IBAN_RE.sub(lambda m: mask_iban(m.group(0)), text)


def is_bank_column(file: str | None, column: str | None) -> bool:
    """A column holding bank details (its values never appear in any message)."""
    return column is not None and column in BANK_COLUMNS.get(file or "", ())


def shown_value(file: str, column: str, value: object) -> object:
    """A received cell value as a message may show it: withheld when it comes from a bank
    column or holds anything IBAN-shaped (an IBAN shifted into another column)."""
    if is_bank_column(file, column):
        return WITHHELD
    if isinstance(value, str) and _IBAN_INSIDE_RE.search(value.replace(" ", "")):
        return WITHHELD
    return value
