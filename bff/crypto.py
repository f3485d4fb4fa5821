"""Secrets at rest: MultiFernet from ``BFF_ENCRYPTION_KEYS``, each ciphertext bound to its row.

Fernet has no associated data, so the row's context (table, id, column) is sealed
inside the ciphertext next to the value and checked on the way out: a ciphertext
copied onto another row fails to decrypt, exactly like a wrong key.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bff.errors import SecretDecryptionError

_KDF_INFO = b"bff secrets at rest v1"


def row_context(table: str, row_id: object, column: str) -> str:
    """The binding of a ciphertext: which table, row and column it belongs to."""
    return f"{table}:{row_id}:{column}"


class SecretBox:
    """Encrypts with the newest key; decrypts with any configured key."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(_derive_fernet_key(key)) for key in keys])
        self._newest = Fernet(_derive_fernet_key(keys[0]))

    def encrypt(self, value: str, context: str) -> str:
        sealed = json.dumps({"c": context, "v": value}, separators=(",", ":"))
        return self._newest.encrypt(sealed.encode()).decode("ascii")

    def decrypt(self, ciphertext: str, context: str) -> str:
        try:
            sealed = json.loads(self._fernet.decrypt(ciphertext.encode("ascii")))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            raise SecretDecryptionError(
                f"cannot decrypt the secret of {context}: "
                "none of BFF_ENCRYPTION_KEYS fits, or the value was tampered with"
            ) from None
        if not isinstance(sealed, dict) or sealed.get("c") != context:
            raise SecretDecryptionError(
                f"the secret stored in {context} belongs to another row; refusing to use it"
            )
        value = sealed.get("v")
        if not isinstance(value, str):
            raise SecretDecryptionError(f"the secret of {context} is malformed")
        return value

    def rotate(self, ciphertext: str, context: str) -> str:
        """Re-encrypt with the newest key (after checking the binding)."""
        return self.encrypt(self.decrypt(ciphertext, context), context)


def _derive_fernet_key(key: str) -> bytes:
    # Keys are operator-chosen strings, not necessarily Fernet keys: stretch each one
    # into exactly the 32 bytes Fernet wants.
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(key.encode())
    return base64.urlsafe_b64encode(raw)
