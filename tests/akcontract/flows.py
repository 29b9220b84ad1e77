"""Contract cases for `flows/` and `stages/`."""

from __future__ import annotations

from akcontract import Case

CASES: list[Case] = []
