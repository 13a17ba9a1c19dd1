"""Encryption at rest for the few secrets the bot keeps in its database (the Zalo OA tokens).

A database dump or backup then holds only ciphertext; the key stays in the environment
(TOKEN_ENCRYPTION_KEY), outside the backups. Fernet (AES-128-CBC + HMAC-SHA256) from the
`cryptography` package; several keys, comma-separated and newest first, allow rotation: the first
encrypts, any of them decrypts. Values written before encryption existed are read as they are
and sealed at the next write.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "fernet:"


class SecretBoxError(Exception):
    """A sealed value that none of the configured keys opens (wrong or rotated-away key)."""


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("no encryption key given")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "TOKEN_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes); make one with: "
                'python3 -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            ) from exc

    @staticmethod
    def is_sealed(stored: str | None) -> bool:
        return stored is not None and stored.startswith(PREFIX)

    def seal(self, value: str | None) -> str | None:
        if value is None:
            return None
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, stored: str | None) -> str | None:
        """The plain value of a sealed one; an unsealed (older) value is returned unchanged."""
        if stored is None or not self.is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretBoxError("a stored secret cannot be decrypted with TOKEN_ENCRYPTION_KEY") from exc
