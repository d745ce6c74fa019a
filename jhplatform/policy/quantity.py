"""Kubernetes resource quantities, parsed and printed like apimachinery's ``resource.Quantity``.

Pure and stdlib-only. The rules follow ``staging/src/k8s.io/apimachinery/pkg/api/resource``:

* ``<sign><digits>[.<digits>]<suffix>`` where the suffix is a decimal SI suffix
  (``n u m "" k M G T P E``), a binary SI suffix (``Ki Mi Gi Ti Pi Ei``) or a decimal
  exponent (``e3``, ``E-2``). The suffix decides the quantity's *format*.
* Values are rounded up (away from zero) to nano precision when parsed, because Kubernetes
  would rather hand out a little more than nothing for a tiny non-zero request.
* ``str()`` gives Go's canonical ``Quantity.String()``: ``0.5`` -> ``500m``, ``2000m`` -> ``2``,
  ``1024Mi`` -> ``1Gi``, ``1.5Gi`` -> ``1536Mi``.
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, ROUND_UP, Context, Decimal, InvalidOperation
from functools import total_ordering
from typing import Union

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"
FORMATS = (DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT)

# Enough digits that exa-scale values at nano precision never lose a digit.
_CTX = Context(prec=200, Emax=MAX_EMAX, Emin=MIN_EMIN)

_DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {exp: suffix for suffix, exp in _DEC_SUFFIXES.items()}
_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BIN_BY_EXP = {exp: suffix for suffix, exp in _BIN_SUFFIXES.items()}
_BIN_BY_EXP[0] = ""

_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)", re.DOTALL)
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
_NANO = Decimal("1e-9")
# Go caps binary quantities at MaxInt64 when parsing (``maxAllowed``).
_MAX_ALLOWED = Decimal(2**63 - 1)

# The wording of apimachinery's ErrFormatWrong / ErrSuffix, so errors read familiar.
_FORMAT_WRONG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_SUFFIX_WRONG = "unable to parse quantity's suffix"

QuantityLike = Union["Quantity", str, int, float, Decimal]


def _round_nano(value: Decimal) -> Decimal:
    # ParseQuantity rounds non-zero values *up* to the smallest representable amount (1n).
    if value.is_zero() or value.as_tuple().exponent >= -9:  # type: ignore[operator]
        return value
    return value.quantize(_NANO, rounding=ROUND_UP, context=_CTX)


def _parse_string(text: str) -> tuple[Decimal, str]:
    s = text.strip()
    m = _NUMBER.fullmatch(s)
    if not s or m is None or not (m.group(2) or m.group(3)):
        raise ValueError(f"{_FORMAT_WRONG}: {text!r}")
    sign, whole, frac, suffix = m.groups()
    number = Decimal(f"{sign}{whole or '0'}.{frac or '0'}")
    if suffix in _DEC_SUFFIXES:
        value, fmt = number.scaleb(_DEC_SUFFIXES[suffix], context=_CTX), DECIMAL_SI
    elif suffix in _BIN_SUFFIXES:
        value, fmt = _CTX.multiply(number, Decimal(2 ** _BIN_SUFFIXES[suffix])), BINARY_SI
    elif (em := _EXPONENT.fullmatch(suffix)) is not None:
        value, fmt = number.scaleb(int(em.group(1)), context=_CTX), DECIMAL_EXPONENT
    elif re.fullmatch(r"[eEinumkKMGTP]*[-+]?[0-9]*", suffix):
        raise ValueError(f"{_SUFFIX_WRONG}: {text!r}")
    else:
        raise ValueError(f"{_FORMAT_WRONG}: {text!r}")
    value = _round_nano(value)
    if fmt == BINARY_SI and value > _MAX_ALLOWED:
        value = _MAX_ALLOWED
    if fmt == BINARY_SI and 0 < abs(value) < 1:
        # Go switches sub-unit binary values to DecimalSI "to avoid rounding and confusion".
        fmt = DECIMAL_SI
    return value, fmt


def _to_decimal_and_format(value: QuantityLike) -> tuple[Decimal, str]:
    if isinstance(value, Quantity):
        return value.value, value.format
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return Decimal(value), DECIMAL_SI
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"not a finite quantity: {value!r}")
        # repr() of a float is its shortest round-tripping decimal: 0.1 -> "0.1".
        return _round_nano(Decimal(repr(value))), DECIMAL_SI
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite quantity: {value!r}")
        return _round_nano(value), DECIMAL_SI
    if isinstance(value, str):
        return _parse_string(value)
    raise ValueError(f"not a quantity: {value!r}")


def parse_quantity(value: QuantityLike) -> Decimal:
    """Parse a Kubernetes quantity (``"100m"``, ``"1Gi"``, ``"1e3"``, ``2``, ``0.5``) to a Decimal.

    Raises ``ValueError`` naming the offending input on anything else.
    """
    return _to_decimal_and_format(value)[0]


def _canonical(value: Decimal, fmt: str) -> str:
    """Go's ``Quantity.CanonicalizeBytes`` + ``String``."""
    if value.is_zero():
        return "0"
    if fmt == BINARY_SI:
        if -1024 < value < 1024 or value != value.to_integral_value(context=_CTX):
            # Small or fractional byte counts are shown in decimal so nothing is rounded.
            fmt = DECIMAL_SI
        else:
            n, exp = int(value), 0
            # Go keeps dividing while exact; past Ei it has no suffix, so stop there.
            while n % 1024 == 0 and exp < 60:
                n //= 1024
                exp += 10
            return f"{n}{_BIN_BY_EXP[exp]}"
    sign, digits, exp = value.normalize(_CTX).as_tuple()
    mantissa = int("".join(map(str, digits)))
    # Canonical decimal form has an exponent that is a multiple of three (m, "", k, ...).
    shift = exp % 3  # type: ignore[operator]
    mantissa *= 10**shift
    exp -= shift  # type: ignore[operator]
    if fmt == DECIMAL_EXPONENT:
        suffix = "" if exp == 0 else f"e{exp}"
    else:
        if exp > 18:  # beyond "E": keep the suffix and grow the mantissa
            mantissa *= 10 ** (exp - 18)
            exp = 18
        suffix = _DEC_BY_EXP[exp]
    return f"{'-' if sign else ''}{mantissa}{suffix}"


@total_ordering
class Quantity:
    """A resource quantity: a Decimal value plus the format it prints in.

    Equality and ordering compare values only (like Go's ``Cmp``): ``1Gi == 1073741824``.
    Arithmetic follows ``Quantity.Add``/``Sub``: the result keeps the left operand's format
    unless the left operand is zero, in which case it takes the right one's.
    """

    __slots__ = ("value", "format")

    def __init__(self, value: QuantityLike = 0, format: str | None = None):
        dec, fmt = _to_decimal_and_format(value)
        if format is not None and format not in FORMATS:
            raise ValueError(f"unknown quantity format {format!r}")
        self.value: Decimal = dec
        self.format: str = format or fmt

    @classmethod
    def parse(cls, value: QuantityLike) -> Quantity:
        """Parse a string or number into a Quantity, keeping the format its suffix implies."""
        dec, fmt = _to_decimal_and_format(value)
        return cls(dec, fmt)

    def __str__(self) -> str:
        return _canonical(self.value, self.format)

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r}, {self.format!r})"

    def is_zero(self) -> bool:
        """True if the value is exactly zero."""
        return self.value.is_zero()

    def __add__(self, other: QuantityLike) -> Quantity:
        o = _coerce(other)
        fmt = o.format if self.is_zero() else self.format
        return Quantity(_CTX.add(self.value, o.value), fmt)

    def __sub__(self, other: QuantityLike) -> Quantity:
        o = _coerce(other)
        fmt = o.format if self.is_zero() else self.format
        return Quantity(_CTX.subtract(self.value, o.value), fmt)

    def __neg__(self) -> Quantity:
        return Quantity(-self.value, self.format)

    def __eq__(self, other: object) -> bool:
        try:
            return self.value == _coerce(other).value  # type: ignore[arg-type]
        except ValueError:
            return NotImplemented

    def __lt__(self, other: QuantityLike) -> bool:
        return self.value < _coerce(other).value

    def __hash__(self) -> int:
        return hash(self.value)

    def round_up(self, scale: int = 0) -> Quantity:
        """Round away from zero to ``10**-scale`` (Go ``RoundUp``), keeping the format."""
        q = Decimal(1).scaleb(-scale)
        return Quantity(self.value.quantize(q, rounding=ROUND_UP, context=_CTX), self.format)

    def int_value(self) -> int:
        """Go ``Value()``: the value rounded up to an integer."""
        return int(self.value.to_integral_value(rounding=ROUND_UP, context=_CTX))

    def milli_value(self) -> int:
        """Go ``MilliValue()``: the value in thousandths, rounded up."""
        return int(self.value.scaleb(3, context=_CTX).to_integral_value(rounding=ROUND_UP, context=_CTX))


def _coerce(value: object) -> Quantity:
    if isinstance(value, Quantity):
        return value
    return Quantity.parse(value)  # type: ignore[arg-type]


def format_quantity(value: QuantityLike) -> str:
    """Canonical string of a quantity or anything ``Quantity.parse`` accepts."""
    return str(_coerce(value))


def cpu_millis(value: QuantityLike) -> int:
    """CPU in millicores, rounded up: ``"1.5"`` -> 1500, ``"100m"`` -> 100."""
    return _coerce(value).milli_value()


def bytes_of(value: QuantityLike) -> int:
    """Whole units (bytes for memory/storage), rounded up: ``"1Gi"`` -> 1073741824."""
    return _coerce(value).int_value()
