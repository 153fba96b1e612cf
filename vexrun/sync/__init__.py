"""Encrypted, incremental, git-backed backups of ``.vmig.jsonl`` exports (format ``vexrun-backup/1``).

Read :mod:`.workspace` for the repository layout, :mod:`.masterkey` for the key hierarchy and key files,
:mod:`.formats` for objects, the manifest and the status, :mod:`.bucketing` for how a file becomes
objects, :mod:`.local` for the freshness rules and :mod:`.git` for the transport. :mod:`.engine` and
:mod:`.admin` hold the verbs, :mod:`.history` older generations (``log``, ``pull --generation``,
``compact --keep``), :mod:`.check` the ``check`` verb; :mod:`.api` the calls the runner makes.
"""

from __future__ import annotations
