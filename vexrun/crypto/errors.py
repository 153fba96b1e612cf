"""Errors of signing, verification and decryption (subclasses of :class:`vexrun.errors.VexrunError`).

``vexrun verify`` has its own exit codes (the design's table)::

    VerifyError                    base of what verify reports
    ├── Tampered            exit 1  digest, size or signature does not match
    ├── Stale               exit 1  a good signature, older than ``--max-age`` allows
    ├── NameMismatch        exit 1  a good signature, made for another file name than ``--expect-name``
    ├── BadSignatureFile    exit 3  .sig missing, malformed, unsupported version or payload type
    ├── UntrustedKey        exit 4  no trusted key matches
    └── VerifyIOError       exit 5  the file or the signature cannot be read

Decryption and key files::

    CryptoError             exit 1  base
    ├── DecryptionFailed    exit 1  a ciphertext fails authentication (damaged, truncated, moved, replayed)
    ├── WrongPassphrase     exit 6  a key file's tag fails: wrong passphrase or recovery code
    ├── KeyFileError        exit 1  a key file is malformed, hostile, or has unsafe permissions
    └── MissingExtra        exit 1  ``cryptography`` is not installed
"""

from __future__ import annotations

from ..errors import InvalidInput, Terminal, VexrunError

__all__ = [
    "BadSignatureFile",
    "CryptoError",
    "DecryptionFailed",
    "KeyFileError",
    "MissingExtra",
    "NameMismatch",
    "Stale",
    "Tampered",
    "UntrustedKey",
    "VerifyError",
    "VerifyIOError",
    "WrongPassphrase",
]


class VerifyError(VexrunError, Terminal):
    """Base of the outcomes of ``vexrun verify`` other than success."""


class Tampered(VerifyError):
    """The file does not match its signature (digest, size or signature)."""

    exit_code = 1


class Stale(VerifyError):
    """The signature verifies, but it was made longer ago than the caller accepts (a replayed old export)."""

    exit_code = 1


class NameMismatch(VerifyError):
    """The signature verifies, but it was made for a file of another name than the one expected."""

    exit_code = 1


class BadSignatureFile(VerifyError):
    """The signature file is missing, malformed, or of an unsupported version or payload type."""

    exit_code = 3


class UntrustedKey(VerifyError):
    """No trusted public key matches the signature."""

    exit_code = 4


class VerifyIOError(VerifyError):
    """The file or the signature cannot be read."""

    exit_code = 5


class CryptoError(VexrunError, Terminal):
    """Base of key file and decryption errors."""


class DecryptionFailed(CryptoError):
    """A ciphertext failed authentication: damaged, truncated, moved to another id or replayed."""


class WrongPassphrase(CryptoError):
    """A key file did not open: the passphrase or recovery code is wrong."""

    exit_code = 6


class KeyFileError(CryptoError, InvalidInput):
    """A key file is malformed, has hostile parameters, or unsafe permissions."""


class MissingExtra(CryptoError):
    """The optional ``cryptography`` dependency is missing or too old."""
