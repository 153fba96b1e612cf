"""Hostile inputs end in one clear line, with bounded memory and time (issue 11, section 1).

Every case of the corpus runs the real CLI in a child process whose address space is capped at 1 GiB
(``RLIMIT_AS``), and asserts: exit code 1 or 2, the last line of the error output names the place (the file, its
line and column, the member of a zip), no traceback, no internal error, and at most 30 seconds. The bombs are
built in ``tmp_path`` at test time and are small on disk (the zip bomb is ~1 MB and inflates to 1 GiB).
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

#: The child's address-space limit: what a careless reader would cross long before it finished.
LIMIT = 1 << 30
#: Wall time one case may take.
SECONDS = 30.0

_CHILD = f"""
import atexit, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))

def _report_rss():
    # VmHWM, this process's own peak (ru_maxrss is not: Linux carries the parent's peak at fork across exec,
    # so a child of a large pytest process would report the parent's)
    with open("/proc/self/status") as st:
        kb = next(int(line.split()[1]) for line in st if line.startswith("VmHWM:"))
    with open(os.environ["VEXRUN_TEST_RSS"], "w") as fh:
        fh.write(str(kb))

atexit.register(_report_rss)
from vexrun.cli import main
main(sys.argv[1:])
"""


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float
    rss_kb: int

    @property
    def last(self) -> str:
        """The last line a user sees about the failure: stderr's, or stdout's for the verbs that report there
        (``validate``)."""
        lines = (self.err.strip() or self.out.strip()).splitlines()
        return lines[-1] if lines else ""


def run_limited(*args: str, cwd: Path) -> Outcome:
    """``vexrun ARGS`` in a child process limited to 1 GiB of address space."""
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "VEXRUN_ANNOTATE", "VEXRUN_DEBUG")}
    env["NO_COLOR"] = "1"
    env["VEXRUN_TEST_RSS"] = str(cwd / ".rss")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], cwd=cwd, env=env, capture_output=True, timeout=SECONDS * 4
    )
    seconds = time.monotonic() - t0
    rss_file = cwd / ".rss"
    rss = int(rss_file.read_text() or 0) if rss_file.exists() else 0
    return Outcome(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
        seconds,
        rss,
    )


# -- building the inputs -------------------------------------------------------------------------------------------

TARGET = "{type: vmig, path: out/out.vmig.jsonl}"


def recipe(tmp: Path, source: str, *, name: str = "r.yaml", extra: str = "") -> str:
    (tmp / name).write_text(f"version: 1\nsource: {source}\ntarget: {TARGET}\n{extra}")
    return name


def good_vmig(tmp: Path) -> None:
    (tmp / "in.vmig.jsonl").write_text('{"id": "a", "text": "hello", "vex_version": "1.0.0"}\n')


def alias_bomb(tmp: Path) -> str:
    """Billion laughs: nine levels of anchors, each referencing the previous one ten times (10^9 values)."""
    good_vmig(tmp)
    lines = ["version: 1", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [{','.join(['*' + prev] * 10)}]")
    lines += ["source: {type: vmig, path: in.vmig.jsonl}", f"target: {TARGET}"]
    (tmp / "bomb.yaml").write_text("\n".join(lines) + "\n")
    return "bomb.yaml"


def recursive_alias(tmp: Path) -> str:
    good_vmig(tmp)
    return recipe(tmp, "{type: vmig, path: in.vmig.jsonl}", name="loop.yaml", extra="x: &a [*a]\n")


def recursive_merge(tmp: Path) -> str:
    good_vmig(tmp)
    return recipe(tmp, "{type: vmig, path: in.vmig.jsonl}", name="merge.yaml", extra="x: &m {k: 1, <<: *m}\n")


def deep_yaml(tmp: Path) -> str:
    good_vmig(tmp)
    return recipe(tmp, "{type: vmig, path: in.vmig.jsonl}", name="deep.yaml", extra="x: " + "[" * 900 + "]" * 900)


def huge_recipe(tmp: Path) -> str:
    good_vmig(tmp)
    padding = "# " + "x" * 1000 + "\n"
    return recipe(tmp, "{type: vmig, path: in.vmig.jsonl}", name="huge.yaml", extra=padding * 2100)


def file_ref(target: Callable[[Path], str]) -> Callable[[Path], str]:
    def build(tmp: Path) -> str:
        good_vmig(tmp)
        ref = target(tmp)
        return recipe(
            tmp, "{type: vmig, path: in.vmig.jsonl}", name="ref.yaml", extra=f'run: {{state_dir: "${{file:{ref}}}"}}\n'
        )

    return build


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "pipe")
    return "pipe"


def _folder(tmp: Path) -> str:
    (tmp / "folder").mkdir()
    return "folder"


def _big_secret(tmp: Path) -> str:
    (tmp / "big.txt").write_bytes(b"k" * (1 << 20))
    return "big.txt"


def recipe_symlink_to_zero(tmp: Path) -> str:
    (tmp / "zero.yaml").symlink_to("/dev/zero")
    return "zero.yaml"


def recipe_binary(tmp: Path) -> str:
    (tmp / "binary.yaml").write_bytes(b"version: 1\x00\xff\xfe\n" + random.Random(1).randbytes(4096))
    return "binary.yaml"


def export_recipe(tmp: Path, path: str, extra: str = "") -> str:
    return recipe(tmp, f"{{type: claude-export, path: {path}{extra}}}", name="export.yaml")


def _deflate_stream(total: int, head: bytes, fill: bytes, tail: bytes) -> tuple[bytes, int]:
    """A raw deflate stream of ``head + fill * n + tail`` (``total`` bytes in all) and its CRC-32. A full flush
    after each 1 MiB block resets the compressor, so one block is compressed once and its bytes repeated: a
    1 GiB member costs ~1 MB and a second to build."""
    block = fill * ((1 << 20) // len(fill))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)]
    unit = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    n = (total - len(head) - len(tail)) // len(block)
    parts.append(unit * n)
    rest = fill[:1] * (total - len(head) - len(tail) - n * len(block)) + tail
    parts.append(comp.compress(rest) + comp.flush())
    crc = zlib.crc32(head)
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    return b"".join(parts), zlib.crc32(rest, crc)


def _zip_with_raw_member(path: Path, name: str, data: bytes, crc: int, size: int) -> None:
    """A zip archive holding one deflated member whose compressed bytes are ``data``."""
    fname = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x5821, crc, len(data), size, len(fname), 0)
    central = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x5821, crc, len(data), size, len(fname), 0, 0, 0, 0, 0, 0
    )
    cd_offset = len(local) + len(fname) + len(data)
    cd = central + fname
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), cd_offset, 0)
    path.write_bytes(local + fname + data + cd + end)


def zip_bomb(tmp: Path) -> str:
    """~1 MB on disk: one conversation whose text is a string of 1 GiB."""
    head = b'[{"uuid": "c0", "name": "bomb", "chat_messages": [{"uuid": "m0", "sender": "human", "text": "'
    tail = b'"}]}]'
    data, crc = _deflate_stream(1 << 30, head, b"A", tail)
    _zip_with_raw_member(tmp / "bomb.zip", "conversations.json", data, crc, 1 << 30)
    return export_recipe(tmp, "bomb.zip")


def zip_member_over_limit(tmp: Path) -> str:
    """Many small conversations, 8 MiB inflated, against a max_member_bytes of 1 MiB set on the source."""
    conv = b'{"uuid": "c", "name": "n", "chat_messages": []},'
    data, crc = _deflate_stream(8 << 20, b"[", conv, b'{"uuid": "z", "chat_messages": []}]')
    _zip_with_raw_member(tmp / "many.zip", "conversations.json", data, crc, 8 << 20)
    return export_recipe(tmp, "many.zip", ", max_member_bytes: 1048576")


def _small_export() -> bytes:
    return (ROOT / "tests" / "data" / "exports" / "claude" / "conversations.json").read_bytes()


def truncated_zip(tmp: Path) -> str:
    with zipfile.ZipFile(tmp / "full.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", _small_export())
    blob = (tmp / "full.zip").read_bytes()
    (tmp / "cut.zip").write_bytes(blob[: len(blob) // 2])
    return export_recipe(tmp, "cut.zip")


def zip_not_json(tmp: Path) -> str:
    with zipfile.ZipFile(tmp / "nj.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", "<html>this is not JSON</html>")
    return export_recipe(tmp, "nj.zip")


def zip_corrupt_data(tmp: Path) -> str:
    payload = b"[" + b",".join([b'{"uuid": "c%d", "chat_messages": []}' % i for i in range(5000)]) + b"]"
    with zipfile.ZipFile(tmp / "bad.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", payload)
    blob = bytearray((tmp / "bad.zip").read_bytes())
    for i in range(200, 400):
        blob[i] ^= 0x5A
    (tmp / "bad.zip").write_bytes(bytes(blob))
    return export_recipe(tmp, "bad.zip")


def zip_without_member(tmp: Path) -> str:
    with zipfile.ZipFile(tmp / "none.zip", "w") as zf:
        zf.writestr("users.json", "[]")
        zf.writestr("a/b/c/d/e/conversations.json", "[]")  # too deep to be the export's
        zf.writestr("../conversations.json", "[]")  # outside the archive
    return export_recipe(tmp, "none.zip")


def zip_too_many_members(tmp: Path) -> str:
    """An end record that declares 200,000 entries (ZIP64), without the archive holding them."""
    eocd64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 200_000, 200_000, 0, 0)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    (tmp / "many.zip").write_bytes(eocd64 + locator + eocd)
    return export_recipe(tmp, "many.zip")


def deep_json(tmp: Path) -> str:
    body = b'[{"uuid": "c0", "chat_messages": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]"
    (tmp / "deep.json").write_bytes(body)
    return export_recipe(tmp, "deep.json")


def bad_utf8_export(tmp: Path) -> str:
    (tmp / "bad.json").write_bytes(b'[{"uuid": "c0", "name": "caf\xe9", "chat_messages": []}]')
    return export_recipe(tmp, "bad.json")


def nul_export(tmp: Path) -> str:
    (tmp / "nul.json").write_bytes(b'[{"uuid": "c0", "name": "a\x00b", "chat_messages": []}]')
    return export_recipe(tmp, "nul.json")


def random_export(tmp: Path) -> str:
    (tmp / "rand.json").write_bytes(random.Random(2).randbytes(1 << 16))
    return export_recipe(tmp, "rand.json")


def giant_conversation(tmp: Path) -> str:
    text = "x" * (200 * 1024)
    (tmp / "giant.json").write_text(f'[{{"uuid": "c0", "chat_messages": [{{"text": "{text}"}}]}}]')
    return export_recipe(tmp, "giant.json", ", max_value_bytes: 65536")


def fifo_export(tmp: Path) -> str:
    os.mkfifo(tmp / "conversations.json")
    return export_recipe(tmp, "conversations.json")


def dev_zero_export(tmp: Path) -> str:
    return export_recipe(tmp, "/dev/zero")


def random_bytes(tmp: Path, name: str = "rand.vmig.jsonl") -> str:
    (tmp / name).write_bytes(random.Random(3).randbytes(1 << 18))
    return name


def vmig_source(path: str) -> Callable[[Path], str]:
    def build(tmp: Path) -> str:
        return recipe(tmp, f"{{type: vmig, path: {path}}}", name="vmig.yaml")

    return build


def random_vmig_source(tmp: Path) -> str:
    random_bytes(tmp)
    return vmig_source("rand.vmig.jsonl")(tmp)


def export_as_vmig(tmp: Path) -> str:
    (tmp / "conversations.json").write_bytes(_small_export())
    return vmig_source("conversations.json")(tmp)


def chatgpt_as_vmig(tmp: Path) -> str:
    chatgpt = ROOT / "tests" / "data" / "exports" / "chatgpt" / "conversations.json"
    (tmp / "chatgpt.json").write_bytes(chatgpt.read_bytes())
    return vmig_source("chatgpt.json")(tmp)


def long_line_gz(tmp: Path) -> str:
    """A .vmig.jsonl.gz whose one line is 100 MB without a newline (100 KB on disk)."""
    with gzip.open(tmp / "long.vmig.jsonl.gz", "wb", compresslevel=9) as fh:
        fh.write(b'{"id": "x", "text": "')
        block = b"a" * (1 << 20)
        for _ in range(100):
            fh.write(block)
    return "long.vmig.jsonl.gz"


def nul_vmig(tmp: Path) -> str:
    (tmp / "nul.vmig.jsonl").write_bytes(b'{"id": "a", "text": "x\x00y"}\n{"id": "b", "text": "\x00"}\n')
    return "nul.vmig.jsonl"


def bad_utf8_vmig(tmp: Path) -> str:
    (tmp / "u.vmig.jsonl").write_bytes(b'{"id": "a", "text": "caf\xe9"}\n')
    return "u.vmig.jsonl"


def deep_vmig(tmp: Path) -> str:
    (tmp / "d.vmig.jsonl").write_bytes(b'{"id": "a", "metadata": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n")
    return "d.vmig.jsonl"


def truncated_gz(tmp: Path) -> str:
    blob = gzip.compress(
        b"".join(b'{"id": "r%d", "text": "memory %d", "vex_version": "1.0.0"}\n' % (i, i) for i in range(20000))
    )
    (tmp / "cut.vmig.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    return "cut.vmig.jsonl.gz"


def truncated_gz_source(tmp: Path) -> str:
    truncated_gz(tmp)
    return vmig_source("cut.vmig.jsonl.gz")(tmp)


def fifo_vmig(tmp: Path) -> str:
    os.mkfifo(tmp / "p.vmig.jsonl")
    return "p.vmig.jsonl"


def zero_vmig(tmp: Path) -> str:
    (tmp / "z.vmig.jsonl").symlink_to("/dev/zero")
    return "z.vmig.jsonl"


def folder_vmig(tmp: Path) -> str:
    (tmp / "dir.vmig.jsonl").mkdir()
    return "dir.vmig.jsonl"


def unwritable_target(tmp: Path) -> str:
    good_vmig(tmp)
    if os.geteuid() == 0:
        # root writes through any mode bits; a directory where the output file must go stops root too
        (tmp / "out.vmig.jsonl").mkdir()
        where = "out.vmig.jsonl"
    else:
        (tmp / "ro").mkdir()
        (tmp / "ro").chmod(0o555)
        where = "ro/out.vmig.jsonl"
    (tmp / "w.yaml").write_text(
        f"version: 1\nsource: {{type: vmig, path: in.vmig.jsonl}}\ntarget: {{type: vmig, path: {where}}}\n"
    )
    return "w.yaml"


def missing_source(tmp: Path) -> str:
    return recipe(tmp, "{type: vmig, path: gone.vmig.jsonl}", name="gone.yaml")


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], str]
    #: the command; "{}" is replaced by what ``build`` returned
    args: tuple[str, ...]
    #: what the last line must contain (the place), "{}" replaced as above
    place: str
    #: what any line of the output must contain, if anything
    says: str = ""


CASES = [
    # recipes
    Case("alias-bomb-run", alias_bomb, ("run", "{}"), "bomb.yaml", "bomb.yaml:5:1: error[yaml-alias] d"),
    Case("alias-bomb-validate", alias_bomb, ("validate", "{}"), "bomb.yaml", "error[yaml-alias]"),
    Case("alias-bomb-plan", alias_bomb, ("plan", "{}"), "bomb.yaml", "error[yaml-alias]"),
    Case("recursive-alias-run", recursive_alias, ("run", "{}"), "loop.yaml", "loop.yaml:4:1: error[yaml-alias] x"),
    Case("recursive-alias-validate", recursive_alias, ("validate", "{}"), "loop.yaml", "error[yaml-alias]"),
    Case("recursive-alias-plan", recursive_alias, ("plan", "{}"), "loop.yaml", "error[yaml-alias]"),
    Case("recursive-merge", recursive_merge, ("validate", "{}"), "merge.yaml", "error[yaml-alias]"),
    Case("deep-yaml", deep_yaml, ("validate", "{}"), "deep.yaml", "error[yaml-depth]"),
    Case("huge-recipe", huge_recipe, ("validate", "{}"), "huge.yaml", "error[recipe-too-large]"),
    Case("file-dev-zero", file_ref(lambda t: "/dev/zero"), ("validate", "{}"), "ref.yaml", "${file:/dev/zero}"),
    Case("file-directory", file_ref(_folder), ("validate", "{}"), "ref.yaml", "is a directory"),
    Case("file-fifo", file_ref(_fifo), ("validate", "{}"), "ref.yaml", "is a FIFO"),
    Case("file-too-large", file_ref(_big_secret), ("run", "{}"), "ref.yaml", "larger than 64 KiB"),
    Case("recipe-is-dev-zero", recipe_symlink_to_zero, ("run", "{}"), "zero.yaml: is a character device"),
    Case("recipe-binary", recipe_binary, ("plan", "{}"), "binary.yaml"),
    Case(
        "env-file-dev-zero",
        lambda t: recipe(t, "{type: vmig, path: in.vmig.jsonl}"),
        ("plan", "--env-file", "/dev/zero", "{}"),
        "/dev/zero",
    ),
    Case("missing-source-run", missing_source, ("run", "{}"), "gone.vmig.jsonl: no such file"),
    # conversation exports: zips
    Case("zip-bomb", zip_bomb, ("run", "{}"), "bomb.zip!conversations.json", "max_value_bytes (64 MiB)"),
    Case(
        "zip-member-over-limit",
        zip_member_over_limit,
        ("run", "{}"),
        "many.zip!conversations.json",
        "max_member_bytes (1 MiB)",
    ),
    Case("zip-truncated", truncated_zip, ("run", "{}"), "cut.zip", "first member is 'conversations.json'"),
    Case("zip-member-not-json", zip_not_json, ("run", "{}"), "nj.zip!conversations.json", "not JSON"),
    Case("zip-corrupt-data", zip_corrupt_data, ("run", "{}"), "bad.zip!conversations.json", "damaged"),
    Case("zip-no-member", zip_without_member, ("run", "{}"), "none.zip", "holds no conversations.json (only"),
    Case("zip-too-many-members", zip_too_many_members, ("run", "{}"), "many.zip", "200,000 entries"),
    # conversation exports: JSON
    Case("export-deep-json", deep_json, ("run", "{}"), "deep.json", "conversation 0"),
    Case("export-invalid-utf8", bad_utf8_export, ("run", "{}"), "bad.json", "not valid UTF-8 (byte 28)"),
    Case("export-nul-bytes", nul_export, ("run", "{}"), "nul.json", "conversation 0"),
    Case("export-random-bytes", random_export, ("run", "{}"), "rand.json"),
    Case("export-giant-conversation", giant_conversation, ("run", "{}"), "giant.json", "max_value_bytes (64 KiB)"),
    Case("export-fifo", fifo_export, ("run", "{}"), "conversations.json: not a file"),
    Case("export-dev-zero", dev_zero_export, ("run", "{}"), "/dev/zero: not a file"),
    # .vmig.jsonl files
    Case("vmig-random-source", random_vmig_source, ("run", "{}"), "rand.vmig.jsonl", "binary data"),
    Case("vmig-random-inspect", random_bytes, ("inspect", "{}"), "rand.vmig.jsonl", "not a .vmig.jsonl file"),
    Case("vmig-random-validate", random_bytes, ("validate", "{}"), "rand.vmig.jsonl: INVALID"),
    Case("vmig-claude-export", export_as_vmig, ("run", "{}"), "conversations.json", "`type: claude-export`"),
    Case("vmig-chatgpt-export", chatgpt_as_vmig, ("run", "{}"), "chatgpt.json", "`type: chatgpt-export`"),
    Case(
        "vmig-long-line-inspect",
        long_line_gz,
        ("inspect", "--max-line-bytes", "1048576", "{}"),
        "long.vmig.jsonl.gz:1",
        "longer than 1,048,576 bytes",
    ),
    Case(
        "vmig-long-line-validate",
        long_line_gz,
        ("validate", "--max-line-bytes", "1048576", "{}"),
        "long.vmig.jsonl.gz: INVALID",
        "error[line-too-long]",
    ),
    Case("vmig-nul-inspect", nul_vmig, ("inspect", "{}"), "nul.vmig.jsonl:1"),
    Case(
        "vmig-invalid-utf8",
        bad_utf8_vmig,
        ("validate", "{}"),
        "u.vmig.jsonl: INVALID",
        "invalid UTF-8 at byte 25 of the line",
    ),
    Case("vmig-deep-json", deep_vmig, ("validate", "{}"), "d.vmig.jsonl: INVALID", "d.vmig.jsonl:1: error[bad-json]"),
    Case("vmig-truncated-gzip", truncated_gz, ("validate", "{}"), "cut.vmig.jsonl.gz: INVALID", "error[bad-gzip]"),
    Case("vmig-truncated-gzip-run", truncated_gz_source, ("run", "{}"), "cut.vmig.jsonl.gz", "corrupt or truncated"),
    Case("vmig-fifo", fifo_vmig, ("inspect", "{}"), "p.vmig.jsonl: not a regular file"),
    Case("vmig-dev-zero", zero_vmig, ("validate", "{}"), "z.vmig.jsonl: not a regular file"),
    Case("vmig-directory", folder_vmig, ("inspect", "{}"), "dir.vmig.jsonl: is a directory"),
    Case("vmig-target-unwritable", unwritable_target, ("run", "{}"), "out.vmig.jsonl"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    built = case.build(tmp_path)
    res = run_limited(*(a.replace("{}", built) for a in case.args), cwd=tmp_path)
    output = res.out + res.err
    assert res.code in (1, 2), f"exit {res.code}\n{output[-3000:]}"
    assert "Traceback" not in output and "internal error" not in output, output[-3000:]
    assert "MemoryError" not in output and "RecursionError" not in output, output[-3000:]
    assert case.place.replace("{}", built) in res.last, f"last line: {res.last!r}\n{output[-3000:]}"
    if case.says:
        assert case.says in output, output[-3000:]
    assert res.seconds < SECONDS, f"{res.seconds:.1f} s"
    assert res.rss_kb < 700 * 1024, f"peak RSS {res.rss_kb // 1024} MB"


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
