"""Encryption at rest (optional, off by default): AES-256-GCM from the `cryptography` package.

Sealed data is `FWE1` + a random 12-byte nonce + the ciphertext with its 16-byte tag, so a
wrong key or a changed byte is an error, never garbage. The key is 32 random bytes in URL-safe
base64 (`face-watchlist security new-key` or `generate_key()`); it belongs in the add-on's
options or another secret store, never in the data directory it protects.
"""

from __future__ import annotations

import base64
import binascii
import os

from face_watchlist.errors import FaceWatchlistError

MAGIC = b"FWE1"
NONCE = 12


class CryptoError(FaceWatchlistError):
    """A bad key, data sealed with another key, or encrypted data and no key."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def parse_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise CryptoError(
            "security.encryption_key must be 32 random bytes in URL-safe base64 (44 characters)"
        )
    return key


def is_sealed(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


class Cipher:
    def __init__(self, key: str) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - a dependency; this names the fix if it is missing
            raise CryptoError(
                "encryption at rest needs the cryptography package (pip install cryptography)"
            ) from None
        self._aead = AESGCM(parse_key(key))

    def encrypt(self, data: bytes, context: bytes = b"") -> bytes:
        """`context` (what the data is) is authenticated: data sealed as one kind won't open as another."""
        nonce = os.urandom(NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, context or None)

    def decrypt(self, data: bytes, context: bytes = b"") -> bytes:
        from cryptography.exceptions import InvalidTag

        if not is_sealed(data):
            raise CryptoError("not encrypted data")
        nonce = data[len(MAGIC) : len(MAGIC) + NONCE]
        try:
            return self._aead.decrypt(nonce, data[len(MAGIC) + NONCE :], context or None)
        except InvalidTag:
            raise CryptoError(
                "cannot decrypt: the encryption key is not the one this data was written with "
                "(or the data is damaged)"
            ) from None


def encrypt_bytes(data: bytes, cipher: Cipher | None, context: bytes = b"") -> bytes:
    """Sealed when a cipher is set, else as is."""
    return cipher.encrypt(data, context) if cipher else data


def decrypt_bytes(data: bytes, cipher: Cipher | None, context: bytes = b"") -> bytes:
    """Opened when sealed (plaintext written before encryption was turned on reads as it is)."""
    if not is_sealed(data):
        return data
    if cipher is None:
        raise CryptoError("this data is encrypted: set security.encryption_key in the options")
    return cipher.decrypt(data, context)
