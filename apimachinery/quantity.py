"""Resource quantities: "500m", "1.5", "128Mi", "2e3" (k8s.io/apimachinery/pkg/api/resource).

Kubernetes writes amounts of CPU, memory and storage as a decimal number with
a suffix. The suffix is one of three families, and the family a user picked
is remembered so the value prints back the way it was written:

    binary SI    Ki Mi Gi Ti Pi Ei         powers of 1024   "128Mi" = 134217728
    decimal SI   n u m "" k M G T P E      powers of 1000   "500m"  = 0.5
    exponent     e3, E-2, ...              powers of 10     "2e3"   = 2000

tinykube stores quantities as the strings the user wrote (the proto fields
are `map<string, string>`), and turns them into exact `fractions.Fraction`
values only where it computes with them: validation (requests <= limits) and
the scheduler (sums of requests against allocatable). Fractions are exact,
so "0.1" + "0.2" is "300m" and never 0.30000000000000004.

Rounding follows Kubernetes: `milli_value` and `value` round *up* (a request
of 0.1m CPU still costs one millicore), and canonical forms are rounded up to
nano units, the smallest unit Kubernetes represents.

Worked example of `canonical`:

    "1.5"    decimal SI, 1.5 = 1500 x 10^-3           -> "1500m"
    "1000m"  decimal SI, 1 = 1 x 10^0                 -> "1"
    "1536Mi" binary SI, 1536 x 1024^2 (not whole Gi)  -> "1536Mi"
    "2048Ki" binary SI, 2 x 1024^2                    -> "2Mi"
    "0.5Gi"  binary SI, but 536870912 is < 1024^4 and whole: "512Mi"
    "1e3"    exponent, 1 x 10^3                       -> "1e3"

Failure mode: anything outside the grammar raises QuantityError with
Kubernetes' own message, which validation reports against the field path.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

QUANTITY_REGEX = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_ERROR = f"quantities must match the regular expression '{QUANTITY_REGEX}'"
SUFFIX_ERROR = "unable to parse quantity's suffix"

_SPLIT = re.compile(QUANTITY_REGEX)
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$")
_EXPONENT = re.compile(r"^[eE]([-+]?[0-9]+)$")

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"

_BINARY: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL: dict[str, int] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_with_format(text: str) -> tuple[Fraction, str]:
    """The exact value of a quantity and the suffix family it was written in."""
    text = text.strip()
    match = _SPLIT.match(text)
    if match is None or not _NUMBER.match(match.group(1)):
        raise QuantityError(FORMAT_ERROR)
    number, suffix = match.group(1), match.group(2)
    value = Fraction(number)
    if suffix in _BINARY:
        return value * (2 ** _BINARY[suffix]), BINARY_SI
    if suffix in _DECIMAL:
        return value * Fraction(10) ** _DECIMAL[suffix], DECIMAL_SI
    exp = _EXPONENT.match(suffix)
    if exp is None:
        raise QuantityError(SUFFIX_ERROR)
    return value * Fraction(10) ** int(exp.group(1)), DECIMAL_EXPONENT


def parse_quantity(text: str | int | float | Fraction) -> Fraction:
    """The exact value of a quantity: parse_quantity("500m") == Fraction(1, 2)."""
    if isinstance(text, Fraction):
        return text
    if isinstance(text, bool):
        raise QuantityError(FORMAT_ERROR)
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        return Fraction(repr(text)) if math.isfinite(text) else _raise_format()
    return parse_with_format(text)[0]


def _raise_format() -> Fraction:
    raise QuantityError(FORMAT_ERROR)


def is_valid(text: str) -> bool:
    try:
        parse_with_format(text)
    except QuantityError:
        return False
    return True


def value(q: str | Fraction) -> int:
    """The quantity in whole units, rounded up ("1500m" -> 2), as Quantity.Value()."""
    return math.ceil(parse_quantity(q))


def milli_value(q: str | Fraction) -> int:
    """The quantity in thousandths, rounded up ("1.5" -> 1500), as Quantity.MilliValue()."""
    return math.ceil(parse_quantity(q) * 1000)


def _round_up_nano(v: Fraction) -> Fraction:
    return Fraction(math.ceil(v / _NANO)) * _NANO


def format_quantity(v: Fraction, fmt: str = DECIMAL_SI) -> str:
    """The shortest exact text for `v` in the family `fmt` (rounded up to nano units)."""
    sign = "-" if v < 0 else ""
    v = abs(v)
    if fmt == BINARY_SI and v.denominator == 1 and v >= 1024:
        n = v.numerator
        best = ("", n)
        for suffix, shift in _BINARY.items():
            if n % (1 << shift) == 0:
                best = (suffix, n >> shift)
        return f"{sign}{best[1]}{best[0]}"
    v = _round_up_nano(v)
    if v == 0:
        return "0"
    # Express v as mantissa x 10^(3k) with an integer mantissa and the largest k.
    exp3 = -9
    mantissa = v / Fraction(10) ** exp3
    while exp3 < 18 and mantissa % 1000 == 0:
        mantissa /= 1000
        exp3 += 3
    m = int(mantissa)
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{m}" if exp3 == 0 else f"{sign}{m}e{exp3}"
    suffix = next(s for s, e in _DECIMAL.items() if e == exp3)
    return f"{sign}{m}{suffix}"


def canonical(text: str) -> str:
    """Kubernetes' canonical spelling of a quantity: canonical("1.5") == "1500m"."""
    v, fmt = parse_with_format(text)
    return format_quantity(v, fmt)
