from __future__ import annotations

import pytest

from bff.crypto import SecretBox, row_context
from bff.errors import SecretDecryptionError
from tests.conftest import random_key

CONTEXT = row_context("vendor_connections", "default", "api_secret_encrypted")


def test_round_trip() -> None:
    box = SecretBox([random_key()])
    ciphertext = box.encrypt("s3cret-value", CONTEXT)
    assert "s3cret-value" not in ciphertext
    assert box.decrypt(ciphertext, CONTEXT) == "s3cret-value"


def test_each_encryption_is_fresh() -> None:
    box = SecretBox([random_key()])
    assert box.encrypt("same", CONTEXT) != box.encrypt("same", CONTEXT)


def test_rotation_old_ciphertexts_still_decrypt_and_rotate_to_newest() -> None:
    old_key, new_key = random_key(), random_key()
    old_box = SecretBox([old_key])
    ciphertext = old_box.encrypt("value", CONTEXT)

    rotating_box = SecretBox([new_key, old_key])
    assert rotating_box.decrypt(ciphertext, CONTEXT) == "value"
    rotated = rotating_box.rotate(ciphertext, CONTEXT)

    new_only = SecretBox([new_key])
    assert new_only.decrypt(rotated, CONTEXT) == "value"
    with pytest.raises(SecretDecryptionError):
        new_only.decrypt(ciphertext, CONTEXT)


def test_wrong_key_fails_closed_with_a_clear_error() -> None:
    ciphertext = SecretBox([random_key()]).encrypt("value", CONTEXT)
    with pytest.raises(SecretDecryptionError, match="BFF_ENCRYPTION_KEYS"):
        SecretBox([random_key()]).decrypt(ciphertext, CONTEXT)


def test_ciphertext_is_bound_to_its_row() -> None:
    box = SecretBox([random_key()])
    ciphertext = box.encrypt("value", CONTEXT)
    other_row = row_context("vendor_connections", "other", "api_secret_encrypted")
    other_column = row_context("vendor_connections", "default", "api_key_encrypted")
    for context in (other_row, other_column):
        with pytest.raises(SecretDecryptionError, match="another row"):
            box.decrypt(ciphertext, context)


@pytest.mark.parametrize("garbage", ["", "not-a-token", "gAAAAA" + "x" * 80, "ünïcode"])
def test_garbage_fails_closed(garbage: str) -> None:
    with pytest.raises(SecretDecryptionError):
        SecretBox([random_key()]).decrypt(garbage, CONTEXT)


def test_tampered_ciphertext_fails() -> None:
    box = SecretBox([random_key()])
    ciphertext = box.encrypt("value", CONTEXT)
    middle = len(ciphertext) // 2
    flipped = "A" if ciphertext[middle] != "A" else "B"
    with pytest.raises(SecretDecryptionError):
        box.decrypt(ciphertext[:middle] + flipped + ciphertext[middle + 1 :], CONTEXT)
