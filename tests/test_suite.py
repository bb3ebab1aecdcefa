"""Suite files: the `reference` figures a strategy is compared against, and their validation."""

from __future__ import annotations

import re

import pytest

from lrbench.errors import ConfigError
from lrbench.running import load_suite

SUITE = """
[suite]
budget_epochs = 10
[tasks.digits]
target = 0.9
[[strategies]]
name = "fixed"
lr = 0.01
{reference}
"""


def _write(tmp_path, reference: str):
    p = tmp_path / "s.toml"
    p.write_text(SUITE.format(reference=reference))
    return p


def test_reference_is_read_as_sorted_epoch_value_pairs(tmp_path):
    suite = load_suite(_write(tmp_path, "reference = { 100 = 234.16, 50 = 235.11 }"))
    assert suite.strategies[0].reference == ((50, 235.11), (100, 234.16))
    assert "reference" not in suite.strategies[0].options  # not handed to the strategy


def test_shipped_seed002_suite_carries_table_6():
    suite = load_suite("seed002")
    refs = {s.label: dict(s.reference) for s in suite.strategies}
    assert refs["fixed-0.0003"] == {50: 235.11, 100: 234.16}
    assert refs["cosine-50"] == {50: 233.74}
    assert refs["cosine-100"] == {50: 234.44, 100: 233.30}


@pytest.mark.parametrize(
    "reference, where",
    [
        ('reference = { "fifty" = 235.0 }', "strategies[0].reference"),
        ("reference = { 0 = 235.0 }", "strategies[0].reference"),
        ('reference = { 50 = "low" }', "strategies[0].reference.50"),
        ("reference = 235.0", "strategies[0].reference"),
    ],
)
def test_bad_reference_names_the_key(tmp_path, reference, where):
    with pytest.raises(ConfigError, match=re.escape(f"s.toml: {where}:")):
        load_suite(_write(tmp_path, reference))
