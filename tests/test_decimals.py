from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.model.decimals import dec_text, mid_text, scaled_text, spread_text


@pytest.mark.parametrize(
    "raw,text",
    [
        ("0.414", "0.414"),
        ("0.430", "0.43"),
        ("3100", "3100"),
        ("5.0", "5"),
        ("0", "0"),
        ("0.000", "0"),
        (0.14, "0.14"),
        (1e-05, "0.00001"),
        (222000000, "222000000"),
        ("1E+3", "1000"),
        (" 0.5 ", "0.5"),
    ],
)
def test_dec_text(raw, text):
    assert dec_text(raw) == text


@pytest.mark.parametrize("junk", ["", "abc", "NaN", "inf", "-1", -0.5, None, True, [], "1.2.3", "1e999999999", 1e300])
def test_dec_text_rejects(junk):
    with pytest.raises(ValueError):
        dec_text(junk)


def test_scaled_and_mid():
    assert scaled_text(222000000, 6) == "222"
    assert scaled_text("12360330000", 6) == "12360.33"
    assert scaled_text(1, 6) == "0.000001"
    assert mid_text("0.414", "0.416") == "0.415"
    assert spread_text("0.414", "0.416") == "0.002"
    assert spread_text("0.5", "0.4") == "-0.1"


@given(st.decimals(min_value=0, max_value=10**9, allow_nan=False, places=6))
def test_dec_text_is_exact(d):
    assert Decimal(dec_text(str(d))) == d


@given(st.integers(min_value=0, max_value=10**18), st.integers(min_value=0, max_value=18))
def test_scaled_exact(raw, decimals):
    assert Decimal(scaled_text(raw, decimals)) == Decimal(raw) / (Decimal(10) ** decimals)
