"""Who is paid: names in many scripts, entities, bank accounts, initial staff histories."""

from __future__ import annotations

import numpy as np

ENTITIES = (
    "UNOG", "OHCHR", "UNCTAD", "ECE", "OCHA", "ITC", "UNHCR-LO", "UNIDIR", "UNRISD", "UNITAR",
    "ODA", "UNDRR", "UNEP-GVA", "UNECE-TR", "CERD", "CESCR", "CAT", "CRC", "CEDAW", "HRC",
    "UNOSAT", "UNFCCC-LO", "IPCC", "BRS", "CITES", "UNSSC", "JIU", "ICSC-GVA", "UNJSPF-GVA",
    "OIOS-GVA", "DSS-GVA", "OLA-GVA", "DGC-GVA", "UNAIDS-LO", "ILO-LO", "WMO-LO", "UPR",
    "SPT", "CMW", "CED", "CRPD", "UNV-GVA", "UNICEF-PSFR", "UNDP-GVA", "UNFPA-GVA",
    "UN-HABITAT-GVA", "UNODC-LO", "OSAA-GVA", "ESCAP-LO", "UNOPS-GVA",
)
# Duty stations of the payroll area: Geneva and two small outposts (shares add to 1).
DUTY_STATIONS = (("GVA", 0.94), ("BON", 0.04), ("TRN", 0.02))

GIVEN = (
    "Zoé", "Hélène", "François", "Jürgen", "Åsa", "Søren", "Chloé", "José", "Inés", "Łukasz",
    "Mónica", "Ngozi", "Amara", "Kwame", "Aïsha", "Thandiwe", "Priya", "Arjun", "Yuki", "Hiroshi",
    "Mei", "Olivier", "Isabelle", "Matteo", "Giulia", "Ana", "João", "Fatima", "Omar", "Leila",
    "Anders", "Ingrid", "Dmitri", "Tatiana", "Nour", "Karim", "Elif", "Mehmet", "Sofía", "Nikos",
)
FAMILY = (
    "Dupont", "Müller", "Øvergaard", "Gómez", "Núñez", "Kowalczyk", "Okonkwo", "Mensah", "Diallo",
    "Ndlovu", "Sharma", "Tanaka", "Chen", "Rossi", "Esposito", "Silva", "Haddad", "Yılmaz",
    "Papadopoulos", "Lefèvre", "Gauthier", "Schäfer", "Ivanova", "Petrov", "Nakamura", "Kim",
)
NATIVE = (
    "张伟", "王芳", "李娜", "Ольга Иванова", "Дмитрий Смирнов", "محمد العلي", "فاطمة الزهراء",
    "Γιώργος Παπαδόπουλος", "प्रिया शर्मा", "田中 裕子", "김민준", "Nguyễn Văn An", "Şükrü Öztürk",
    "Zhāng Wěi", "Ålesund-Bjørnstad", "O'Brien, Siobhán",
)
BANK_COUNTRIES = {"USD": ("CH", "US", "FR", "GB"), "CHF": ("CH", "CH", "CH", "FR")}


def make_name(rng: np.random.Generator) -> str:
    if rng.random() < 0.12:
        return str(rng.choice(NATIVE))
    return f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"


def make_iban(rng: np.random.Generator, country: str) -> str:
    """A syntactically valid IBAN (ISO 13616 mod-97 check digits)."""
    length = {"CH": 17, "FR": 23, "GB": 18, "US": 20}[country]
    bban = "".join(str(d) for d in rng.integers(0, 10, size=length))
    if country == "GB":  # a British BBAN starts with a four-letter bank code (ISO 13616 registry)
        bban = "".join(chr(65 + int(c) * 2) for c in bban[:4]) + bban[4:]
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"
