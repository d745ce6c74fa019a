"""Kubernetes resource quantities (jhplatform.policy.quantity).

Aspects covered:
- parsing of decimal SI, binary SI and decimal-exponent suffixes, and of ints/floats/Decimals;
- the format each suffix implies, including Go's switch of sub-unit binary values to DecimalSI;
- rounding up of sub-nano values and the BinarySI cap at MaxInt64;
- rejection of malformed input with a ValueError naming the input;
- canonical printing (Go ``Quantity.String()``) for decimal, binary and exponent formats;
- the format of sums and differences (receiver's format unless the receiver is zero);
- value comparisons and hashing, and the integer helpers (milli-values, whole units, round-up).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from jhplatform.policy.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    Quantity,
    bytes_of,
    cpu_millis,
    format_quantity,
    parse_quantity,
)

CANONICAL = [
    ("100m", "100m"),
    ("0.1", "100m"),
    ("1Gi", "1Gi"),
    ("1G", "1G"),
    ("1536Mi", "1536Mi"),
    ("2", "2"),
    ("1.5", "1500m"),
    ("0.5", "500m"),
    ("2000m", "2"),
    ("1000", "1k"),
    ("1024Mi", "1Gi"),
    ("1.5Gi", "1536Mi"),
    ("0", "0"),
    ("0Gi", "0"),
    ("0.5Gi", "512Mi"),
    ("1025Ki", "1025Ki"),
    ("1025", "1025"),
    ("1500000", "1500k"),
    ("12Mi", "12Mi"),
    ("1.1Gi", "1181116006400m"),  # not a whole byte count: decimal, nothing rounded
    ("0.5Ki", "512"),  # below 1024: shown in decimal
    ("1e3", "1e3"),
    ("1.5e3", "1500"),
    ("12e-1", "1200e-3"),
    ("1E", "1E"),
    ("1000E", "1000E"),
    ("-1Gi", "-1Gi"),
    ("-1.5", "-1500m"),
    ("+2", "2"),
    ("1.", "1"),
    (".5", "500m"),
    ("0.1n", "1n"),
    ("1.5n", "2n"),
    ("-0.1n", "-1n"),
    ("1u", "1u"),
    ("1000u", "1m"),
    ("8Ei", "9223372036854775807"),  # binary values are capped at MaxInt64 on parse
    (" 1Gi ", "1Gi"),
    (1, "1"),
    (1000, "1k"),
    (0.25, "250m"),
    (0.1, "100m"),
    (Decimal("1.5"), "1500m"),
]


@pytest.mark.parametrize("raw,expected", CANONICAL, ids=[repr(r) for r, _ in CANONICAL])
def test_canonical_string(raw, expected):
    assert str(Quantity.parse(raw)) == expected
    assert format_quantity(raw) == expected


FORMATS = [
    ("1", DECIMAL_SI),
    ("100m", DECIMAL_SI),
    ("1k", DECIMAL_SI),
    ("1Ki", BINARY_SI),
    ("1Gi", BINARY_SI),
    ("0.5Ki", BINARY_SI),
    ("0.0001Ki", DECIMAL_SI),  # 0 < value < 1 in binary: Go switches to DecimalSI
    ("1e3", DECIMAL_EXPONENT),
    ("1E3", DECIMAL_EXPONENT),
    ("1E", DECIMAL_SI),
    (3, DECIMAL_SI),
]


@pytest.mark.parametrize("raw,fmt", FORMATS, ids=[str(r) for r, _ in FORMATS])
def test_format_from_suffix(raw, fmt):
    assert Quantity.parse(raw).format == fmt


VALUES = [
    ("100m", Decimal("0.1")),
    ("1Ki", Decimal(1024)),
    ("1Mi", Decimal(2**20)),
    ("1Gi", Decimal(2**30)),
    ("1Ti", Decimal(2**40)),
    ("1Pi", Decimal(2**50)),
    ("1Ei", Decimal(2**60)),
    ("1k", Decimal(1000)),
    ("1M", Decimal(10**6)),
    ("1G", Decimal(10**9)),
    ("1T", Decimal(10**12)),
    ("1P", Decimal(10**15)),
    ("1E", Decimal(10**18)),
    ("5n", Decimal("5e-9")),
    ("5u", Decimal("5e-6")),
    ("2.5e2", Decimal(250)),
    ("1e-3", Decimal("0.001")),
    ("1E+2", Decimal(100)),
    ("-3", Decimal(-3)),
    (7, Decimal(7)),
    (1.5, Decimal("1.5")),
]


@pytest.mark.parametrize("raw,value", VALUES, ids=[str(r) for r, _ in VALUES])
def test_parse_quantity_value(raw, value):
    assert parse_quantity(raw) == value


BAD = ["", "abc", "Gi", "1K", "1e", "1Mi5", "--1", "1.2.3", "1 Gi", "1gi", "one", ".", "-", "1ki"]


@pytest.mark.parametrize("raw", BAD, ids=[repr(b) for b in BAD])
def test_parse_rejects_junk(raw):
    with pytest.raises(ValueError) as exc:
        parse_quantity(raw)
    assert repr(raw) in str(exc.value)


@pytest.mark.parametrize(
    "raw",
    [True, None, float("nan"), float("inf"), Decimal("NaN"), [1]],
    ids=["bool", "none", "nan", "inf", "decimal-nan", "list"],
)
def test_parse_rejects_non_quantities(raw):
    with pytest.raises(ValueError):
        parse_quantity(raw)


ADDITIONS = [
    # (left, right, op, expected string, expected format)
    ("0", "1Gi", "+", "1Gi", BINARY_SI),  # a zero receiver takes the argument's format
    ("1Gi", "1Mi", "+", "1025Mi", BINARY_SI),
    ("1Gi", "1", "+", "1073741825", BINARY_SI),  # not a multiple of 1024: decimal integer
    ("1G", "1Mi", "+", "1001048576", DECIMAL_SI),
    ("500m", "1Gi", "+", "1073741824500m", DECIMAL_SI),
    ("1", "1", "+", "2", DECIMAL_SI),
    ("1500m", "500m", "+", "2", DECIMAL_SI),
    ("0", "1e3", "+", "1e3", DECIMAL_EXPONENT),
    ("1e3", "1", "+", "1001", DECIMAL_EXPONENT),
    ("4", "0", "+", "4", DECIMAL_SI),
    ("1Gi", "512Mi", "-", "512Mi", BINARY_SI),
    ("0", "1Gi", "-", "-1Gi", BINARY_SI),
    ("2", "500m", "-", "1500m", DECIMAL_SI),
    ("1", "1", "-", "0", DECIMAL_SI),
]


@pytest.mark.parametrize(
    "left,right,op,expected,fmt",
    ADDITIONS,
    ids=[f"{a}{op}{b}" for a, b, op, _, _ in ADDITIONS],
)
def test_arithmetic_format(left, right, op, expected, fmt):
    a, b = Quantity.parse(left), Quantity.parse(right)
    result = a + b if op == "+" else a - b
    assert str(result) == expected
    assert result.format == fmt


def test_arithmetic_does_not_mutate_operands():
    a, b = Quantity.parse("1Gi"), Quantity.parse("1Mi")
    _ = a + b
    assert (str(a), str(b)) == ("1Gi", "1Mi")


COMPARISONS = [
    ("1Gi", "1073741824", "=="),
    ("1G", "1Gi", "<"),
    ("1", "1000m", "=="),
    ("1001m", "1", ">"),
    ("-1", "0", "<"),
    ("1e3", "1k", "=="),
    ("1n", "0", ">"),
]


@pytest.mark.parametrize("a,b,rel", COMPARISONS, ids=[f"{a}{r}{b}" for a, b, r in COMPARISONS])
def test_comparisons(a, b, rel):
    qa, qb = Quantity.parse(a), Quantity.parse(b)
    assert (qa == qb) is (rel == "==")
    assert (qa < qb) is (rel == "<")
    assert (qa > qb) is (rel == ">")


def test_equal_quantities_hash_alike_and_compare_to_strings():
    assert hash(Quantity.parse("1Gi")) == hash(Quantity.parse("1073741824"))
    assert Quantity.parse("2") == "2000m"
    assert Quantity.parse("2") != "2001m"
    assert sorted([Quantity.parse("1Gi"), Quantity.parse("1G"), Quantity.parse("1")]) == ["1", "1G", "1Gi"]


@pytest.mark.parametrize(
    "raw,zero", [("0", True), ("0Gi", True), ("0e3", True), ("1n", False), ("-1", False)],
    ids=["0", "0Gi", "0e3", "1n", "-1"],
)
def test_is_zero(raw, zero):
    assert Quantity.parse(raw).is_zero() is zero


HELPERS = [
    ("100m", 100, 1),
    ("1.5", 1500, 2),
    ("1", 1000, 1),
    ("1Gi", 1073741824000, 1073741824),
    ("0.1n", 1, 1),  # both round up: asking for something yields something
    ("0", 0, 0),
]


@pytest.mark.parametrize("raw,millis,units", HELPERS, ids=[h[0] for h in HELPERS])
def test_integer_helpers(raw, millis, units):
    assert cpu_millis(raw) == millis
    assert bytes_of(raw) == units
    assert Quantity.parse(raw).milli_value() == millis
    assert Quantity.parse(raw).int_value() == units


@pytest.mark.parametrize(
    "raw,expected", [("1.5", "2"), ("1500m", "2"), ("2", "2"), ("1.1Gi", "1181116007")],
    ids=["1.5", "1500m", "2", "1.1Gi"],
)
def test_round_up_to_whole_units(raw, expected):
    assert str(Quantity.parse(raw).round_up(0)) == expected


def test_constructor_format_override_and_validation():
    q = Quantity(Decimal(2048), BINARY_SI)
    assert str(q) == "2Ki"
    assert str(Quantity(2048)) == "2048"
    with pytest.raises(ValueError):
        Quantity(1, "Hexadecimal")
    assert repr(Quantity.parse("1Gi")) == "Quantity('1Gi', 'BinarySI')"
