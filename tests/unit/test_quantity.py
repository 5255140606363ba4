"""Resource quantities: parsing, rounding and canonical forms as Kubernetes does them."""

from __future__ import annotations

from fractions import Fraction

import pytest

from apimachinery import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("1", Fraction(1)),
        ("1.5", Fraction(3, 2)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1Gi", Fraction(2**30)),
        ("2e3", Fraction(2000)),
        ("1E-3", Fraction(1, 1000)),
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("100n", Fraction(1, 10**7)),
        ("5u", Fraction(5, 10**6)),
        (".5", Fraction(1, 2)),
        ("-1", Fraction(-1)),
        ("+2", Fraction(2)),
        ("0", Fraction(0)),
    ],
)
def test_parse_quantity(text: str, value: Fraction) -> None:
    assert quantity.parse_quantity(text) == value


def test_parse_accepts_numbers_and_fractions() -> None:
    assert quantity.parse_quantity(2) == 2
    assert quantity.parse_quantity(0.25) == Fraction(1, 4)
    assert quantity.parse_quantity(Fraction(3, 4)) == Fraction(3, 4)


@pytest.mark.parametrize("text", ["", "abc", "1..5", "1 Gi", "Mi", "1.2.3", "--1", "1Gb", "1mi"])
def test_invalid_quantities_give_kubernetes_message(text: str) -> None:
    with pytest.raises(quantity.QuantityError) as exc:
        quantity.parse_quantity(text)
    assert str(exc.value) in (quantity.FORMAT_ERROR, quantity.SUFFIX_ERROR)


def test_format_error_text_is_kubernetes() -> None:
    with pytest.raises(quantity.QuantityError, match="quantities must match the regular"):
        quantity.parse_quantity("abc")
    assert quantity.FORMAT_ERROR == (
        "quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )


def test_bad_suffix() -> None:
    with pytest.raises(quantity.QuantityError, match="unable to parse quantity's suffix"):
        quantity.parse_quantity("1mk")


def test_bool_is_not_a_quantity() -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse_quantity(True)


def test_value_and_milli_value_round_up() -> None:
    assert quantity.milli_value("500m") == 500
    assert quantity.milli_value("1.5") == 1500
    assert quantity.milli_value("0.1m") == 1
    assert quantity.milli_value("2") == 2000
    assert quantity.value("1500m") == 2
    assert quantity.value("128Mi") == 134217728
    assert quantity.value("1k") == 1000
    assert quantity.value(Fraction(1, 3)) == 1


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1.5", "1500m"),
        ("1000m", "1"),
        ("0.5", "500m"),
        ("1536Mi", "1536Mi"),
        ("2048Ki", "2Mi"),
        ("0.5Gi", "512Mi"),
        ("1e3", "1e3"),
        ("1k", "1k"),
        ("1000", "1k"),
        ("100", "100"),
        ("0", "0"),
        ("0.1m", "100u"),
        ("-1500m", "-1500m"),
    ],
)
def test_canonical(text: str, canonical: str) -> None:
    assert quantity.canonical(text) == canonical
    assert quantity.parse_quantity(canonical) == pytest.approx(quantity.parse_quantity(text))


def test_is_valid() -> None:
    assert quantity.is_valid("250m")
    assert not quantity.is_valid("a lot")


def test_sums_are_exact() -> None:
    total = sum((quantity.parse_quantity(q) for q in ("0.1", "0.2")), Fraction(0))
    assert quantity.format_quantity(total) == "300m"
