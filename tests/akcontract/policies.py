"""Contract cases for `policies/`, `propertymappings/`, `providers/` and `authenticators/`."""

from __future__ import annotations

from akcontract import Case

CASES: list[Case] = []
