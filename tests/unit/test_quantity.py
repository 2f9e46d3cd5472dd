"""resource.Quantity parsing, canonical text and ordering, as clients see them in API replies."""

from __future__ import annotations

import pytest

from skiff.api.quantity import FORMAT_ERROR, QuantityError, canonical, parse_quantity


@pytest.mark.parametrize(
    ("written", "returned"),
    [
        ("1.5Gi", "1536Mi"),
        ("0.5", "500m"),
        ("1000m", "1"),
        ("2000", "2k"),
        ("1500", "1500"),
        ("100Mi", "100Mi"),
        ("1024Ki", "1Mi"),
        ("0.5Ki", "512"),
        ("1e3", "1e3"),
        ("250m", "250m"),
        ("0", "0"),
        (2, "2"),
        (0.25, "250m"),
    ],
)
def test_quantities_come_back_in_canonical_form(written: object, returned: str) -> None:
    assert canonical(written) == returned


def test_values_finer_than_a_nano_round_up() -> None:
    assert canonical("0.0000000001") == "1n"


def test_quantities_compare_by_value_across_suffixes() -> None:
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("500m") < parse_quantity("1")
    assert parse_quantity("1024Mi") == parse_quantity("1Gi")


def test_int_and_milli_values_round_up() -> None:
    assert parse_quantity("1500m").int_value() == 2
    assert parse_quantity("0.1").milli_value() == 100


@pytest.mark.parametrize("text", ["abc", "1.2.3", "5 Gi", "", "1Zi"])
def test_malformed_quantities_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_error_message_names_the_expected_pattern() -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity("lots")
    assert str(caught.value) == FORMAT_ERROR
    assert "quantities must match the regular expression" in FORMAT_ERROR
