from __future__ import annotations

import pytest

from bff import identifiers
from bff.errors import InvalidIdentifierError


@pytest.mark.parametrize(
    ("raw", "clean"), [("acme", "acme"), ("  eu-1.b_2 ", "eu-1.b_2"), ("A" * 64, "A" * 64)]
)
def test_valid_tenant_ids_are_trimmed(raw: str, clean: str) -> None:
    assert identifiers.tenant_id(raw) == clean
    assert identifiers.sub_tenant_id(raw) == clean


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "A" * 65, "-leading", ".hidden", "a b", "a/b", "a\nb", "a\r\nX-Inject: 1",
     "ü", "a,b", "a;b", "..", "a\x00"],
)  # fmt: skip
def test_invalid_tenant_ids(raw: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        identifiers.tenant_id(raw)


def test_sub_tenant_errors_name_the_field() -> None:
    with pytest.raises(InvalidIdentifierError, match="sub-tenant id"):
        identifiers.sub_tenant_id("a b")


def test_emails_are_trimmed_and_lowercased() -> None:
    assert identifiers.email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize(
    "raw", ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com",
            "ada@@example.com", "ada@example.com\nx", f"{'a' * 250}@example.com"],
)  # fmt: skip
def test_invalid_emails(raw: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        identifiers.email(raw)
