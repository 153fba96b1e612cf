"""Big outputs leave the page cache as they are written: an export's partial file after each synced batch, a
``.vmig.jsonl`` written by :class:`VmigWriter` every 32 MiB (:func:`vexrun.appendfile.drop_cached`). Residency is
read with ``mincore(2)`` on a mapping of the file."""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vexrun.appendfile import AppendFile
from vexrun.testing.data import synthetic_batches
from vexrun.vmig import VmigWriter


def _resident(path: Path) -> int:
    """Bytes of ``path`` in the page cache."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    page = mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = (ctypes.c_ubyte * ((size + page - 1) // page))()
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(b & 1 for b in bytes(vec)) * page
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def _fs_type(path: Path) -> str:
    """The file system ``path`` is on (``/proc/mounts``: the longest mount point above it)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, fs, *_ = line.split()
        if (str(path) + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best):
            best, kind = point, fs
    return kind


@pytest.fixture
def disk_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a disk-backed file system: ``tmp_path``, or, where that is in memory (tmpfs, whose pages
    cannot leave a page cache), a directory in the checkout."""
    if _fs_type(tmp_path) not in ("tmpfs", "ramfs"):
        yield tmp_path
        return
    here = Path(tempfile.mkdtemp(prefix=".page-cache-", dir=Path(__file__).resolve().parent.parent))
    try:
        yield here
    finally:
        shutil.rmtree(here, ignore_errors=True)


def test_an_append_file_drops_what_it_synced(disk_dir: Path) -> None:
    tmp_path = disk_dir
    path = tmp_path / "part.vmig.jsonl"
    out = AppendFile(path, None)
    chunk = os.urandom(1 << 20)
    for _ in range(8):
        out.write(chunk)
    unsynced = _resident(path)
    out.sync()
    synced = _resident(path)
    out.write(chunk)  # written after the sync: still cached until the next one
    out.fh.flush()
    after = _resident(path)
    out.close()
    assert unsynced >= 7 << 20  # the kernel caches what was written ...
    assert synced <= 64 << 10  # ... and drops it once it is durable
    assert after >= 1 << 19
    assert path.read_bytes() == chunk * 9  # nothing lost


def test_a_vmig_writer_drops_what_it_wrote_long_ago(disk_dir: Path) -> None:
    tmp_path = disk_dir
    path = tmp_path / "out.vmig.jsonl"
    with VmigWriter(path) as w:
        for batch in synthetic_batches(20_000, dims=384, seed=5):  # ~100 MB
            w.write_batch(batch)
        size = w._sink.size
        cached = _resident(w._tmp)
    assert size > 90 << 20
    # the last 32-96 MiB may still be cached (written back after the last call); the rest left as it went
    assert cached <= 96 << 20 and cached < size - (8 << 20), (cached, size)
    from vexrun.vmig import read_batches

    assert sum(len(b) for b in read_batches(path)) == 20_000
