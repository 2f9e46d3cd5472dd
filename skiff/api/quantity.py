"""`resource.Quantity`: parsing, canonical formatting and comparison.

A quantity is a decimal number with an optional suffix: binary (`Ki` … `Ei`), decimal SI (`n`, `u`, `m`,
`k`, `M` … `E`) or an exponent (`1e3`). Values are exact (fractions), kept to nano precision as
Kubernetes does, and print in the canonical form the API server returns (`1.5Gi` reads back as
`1536Mi`, `0.5` as `500m`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache, total_ordering

QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_ERROR = f"quantities must match the regular expression '{QUANTITY_PATTERN}'"
SUFFIX_ERROR = "unable to parse quantity's suffix"

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
_EXPONENT_SUFFIX = re.compile(r"^[eE]([-+]?\d+)$")
_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {power: suffix for suffix, power in _BINARY_SUFFIXES.items()}
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """A string that is not a quantity; the message is the one the API server gives."""


@total_ordering
@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str = DECIMAL_SI

    def __str__(self) -> str:
        return _format_cached(self.value, self.format)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self.value == other.value
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def is_zero(self) -> bool:
        return self.value == 0

    def sign(self) -> int:
        return (self.value > 0) - (self.value < 0)

    def int_value(self) -> int:
        """The value rounded up to a whole number (as `Quantity.Value()` does)."""
        return math.ceil(self.value)

    def milli_value(self) -> int:
        """The value in thousandths, rounded up (as `Quantity.MilliValue()` does)."""
        return math.ceil(self.value * 1000)


def parse_quantity(raw: object) -> Quantity:
    """Parse a quantity from its JSON form (a string, or a plain JSON number)."""
    if isinstance(raw, bool):
        raise QuantityError(FORMAT_ERROR)
    if isinstance(raw, int):
        return Quantity(Fraction(raw), DECIMAL_SI)
    if isinstance(raw, float):
        return Quantity(_round_up_to_nano(Fraction(repr(raw))), DECIMAL_SI)
    if not isinstance(raw, str):
        raise QuantityError(FORMAT_ERROR)
    return _parse_text(raw.strip())


# Objects repeat the same few quantities ("100m", "64Mi"); exact parsing with fractions is not cheap.
# A Quantity is immutable, so one parsed value can be shared. Errors are not cached (they are raised).
@lru_cache(maxsize=4096)
def _parse_text(text: str) -> Quantity:
    match = re.match(QUANTITY_PATTERN, text)
    if not match:
        raise QuantityError(FORMAT_ERROR)
    number, suffix = match.groups()
    if not _NUMBER.match(number):
        raise QuantityError(FORMAT_ERROR)
    base = Fraction(number)
    if suffix in _BINARY_SUFFIXES:
        return Quantity(_round_up_to_nano(base * 1024 ** _BINARY_SUFFIXES[suffix]), BINARY_SI)
    if suffix in _DECIMAL_SUFFIXES:
        return Quantity(_round_up_to_nano(base * Fraction(10) ** _DECIMAL_SUFFIXES[suffix]), DECIMAL_SI)
    exponent = _EXPONENT_SUFFIX.match(suffix)
    if exponent:
        scaled = base * Fraction(10) ** int(exponent.group(1))
        return Quantity(_round_up_to_nano(scaled), DECIMAL_EXPONENT)
    raise QuantityError(SUFFIX_ERROR)


def _round_up_to_nano(value: Fraction) -> Fraction:
    # Kubernetes keeps nine decimal places and rounds anything finer up, away from zero.
    nanos = value / _NANO
    if nanos.denominator == 1:
        return value
    rounded = math.ceil(abs(nanos))
    return Fraction(rounded if value > 0 else -rounded) * _NANO


def is_quantity(raw: object) -> bool:
    try:
        parse_quantity(raw)
    except QuantityError:
        return False
    return True


def format_quantity(value: Fraction, fmt: str = DECIMAL_SI) -> str:
    """The canonical text of a value in a format, as the API server writes it back."""
    if value == 0:
        return "0"
    if fmt == BINARY_SI and value.denominator == 1 and abs(value) >= 1024:
        return _format_binary(int(value))
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"


@lru_cache(maxsize=4096)
def _format_cached(value: Fraction, fmt: str) -> str:
    return format_quantity(value, fmt)


def _format_binary(value: int) -> str:
    power = 0
    while power < 6 and value % 1024 ** (power + 1) == 0:
        power += 1
    return f"{value // 1024**power}{_BINARY_BY_POWER.get(power, '')}"


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """The largest exponent (a multiple of 3, -9..18) that leaves an integral mantissa."""
    for exponent in range(18, -10, -3):
        mantissa = value / Fraction(10) ** exponent
        if mantissa.denominator == 1:
            return int(mantissa), exponent
    return math.ceil(value / _NANO), -9


def canonical(raw: object) -> str:
    """Re-format a quantity's JSON form canonically (`"1.5Gi"` becomes `"1536Mi"`)."""
    return str(parse_quantity(raw))
