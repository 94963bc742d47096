"""How an account number is shown anywhere: only its last four characters.

Detectors may not import paywatch, so the mask lives here and paywatch.privacy (the home of
every other personal-data rule) re-exports it.
"""

from __future__ import annotations


def mask_iban(iban: str | None) -> str:
    """Only the last four characters of an account number are ever shown (spaces kept)."""
    if not iban:
        return ""
    keep, out = 4, []
    for ch in reversed(iban):
        if ch == " ":
            out.append(ch)
        elif keep and ch.isalnum():
            keep -= 1
            out.append(ch)
        else:
            out.append("*")
    return "".join(reversed(out))
