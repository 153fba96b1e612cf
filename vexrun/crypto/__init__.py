"""Signing and the cryptographic building blocks of vexrun.

* :mod:`.sign` / :mod:`.verify` — the detached ``vexrun-sig/1`` DSSE envelope of a ``.vmig.jsonl`` file
  (streamed BLAKE3 digest, Ed25519 through ``cryptography``).
* :mod:`.keys` — Ed25519 signing keys in ``$XDG_CONFIG_HOME/vexrun/keys`` (passphrase-wrapped by default).
* :mod:`.cobblestone` — c2sp.org/chunked-encryption (Cobblestone-256: AES-256-GCM, HKDF-SHA-512, key
  commitment), the object format of the encrypted sync repository.
* :mod:`.kdf` — HKDF-Expand, Argon2id and scrypt with bounds checked before anything is allocated.

``cryptography`` is the ``sync`` extra and is imported only inside the functions that need it, so
``import vexrun`` and ``vexrun --help`` stay light.
"""

from __future__ import annotations
