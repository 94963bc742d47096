"""Vectorised IBAN check for the common case: accounts that are certainly valid IBANs of the
bank's own country, decided in polars for all accounts at once, so that only the rest go
through python-stdnum one by one (detectors/rules/pw115_bank_integrity.py `iban_problem`).

`surely_fine` is a sufficient condition for `iban_problem(...) is None`, never a different
verdict: the account is already in compact form (capital letters and digits only), its
country is in stdnum's IBAN registry with a BBAN structure and has no country-specific
module (those run extra checks: BE, ES, ME, NO ...), its BBAN matches that structure
(stdnum's own regular expression), its ISO 7064 mod 97-10 remainder is 1 (stdnum's sum,
digit by digit), and the bank's country is the account's. Anything else is left to stdnum.
"""

from __future__ import annotations

from functools import lru_cache
from string import ascii_uppercase

import polars as pl

MAX_LENGTH = 34  # ISO 13616


@lru_cache(maxsize=1)
def _plain_countries() -> dict[str, str]:
    """Country code -> BBAN regular expression, for registry countries without a module."""
    from stdnum import iban as stdnum_iban  # noqa: PLC0415

    out = {}
    for a in ascii_uppercase:
        for b in ascii_uppercase:
            cc = a + b
            props = stdnum_iban._ibandb.info(cc)[0][1]
            if props and props.get("bban") and stdnum_iban._get_cc_module(cc) is None:
                out[cc] = stdnum_iban._struct_to_re(props["bban"]).pattern
    return out


def surely_fine(pairs: pl.DataFrame, iban: str = "iban", country: str = "bank_country") -> pl.Series:
    """For each row of `pairs`, True where the account is certainly a valid IBAN of the bank's
    own country (see the module text); False means: ask stdnum."""
    plain = _plain_countries()
    acc = pl.col(iban)
    cc = acc.str.slice(0, 2)
    x = pairs.lazy().select(
        acc.alias("_acc"), cc.alias("_cc"), pl.col(country).alias("_bank"),
        (acc.str.slice(4) + acc.str.slice(0, 4)).alias("_r"),
        acc.str.len_chars().alias("_n"),
        acc.str.slice(4).alias("_bban"),
    )
    shaped = (pl.col("_acc").str.contains(r"^[A-Z0-9]{5,34}$").fill_null(False)
              & pl.col("_cc").is_in(list(plain)) & (pl.col("_bank") == pl.col("_cc")).fill_null(False))
    # the BBAN structure of each country present, one expression per country (not per account)
    present = set(pairs.select(pl.col(iban).str.slice(0, 2).unique())[iban].drop_nulls().to_list())
    structure = pl.lit(False)
    for code, pattern in sorted((c, p) for c, p in plain.items() if c in present):
        structure = pl.when(pl.col("_cc") == code).then(pl.col("_bban").str.contains(pattern)).otherwise(structure)
    x = x.with_columns((shaped & structure.fill_null(False)).alias("_ok"))
    # mod 97 of the base-10 form (each letter two digits, A = 10 .. Z = 35), nine digits at a time
    digits = pl.col("_r").str.replace_many(list(ascii_uppercase), [str(10 + i) for i in range(26)])
    x = x.with_columns(pl.when(pl.col("_ok")).then(digits).alias("_d"), pl.lit(0, dtype=pl.Int64).alias("_m"))
    for k in range(0, 2 * MAX_LENGTH, 9):
        chunk = pl.col("_d").str.slice(k, 9)
        width = chunk.str.len_chars()
        scale = width.replace_strict(list(range(10)), [10 ** i for i in range(10)], return_dtype=pl.Int64)
        x = x.with_columns(pl.when(width > 0).then((pl.col("_m") * scale + chunk.cast(pl.Int64)) % 97)
                           .otherwise(pl.col("_m")).alias("_m"))
    return x.select((pl.col("_ok") & (pl.col("_m") == 1)).fill_null(False).alias("fine")).collect()["fine"]
