"""``vexrun sync``: encrypted, incremental backups of a .vmig.jsonl file in a git repository."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

__all__ = ["COMMANDS"]

SYNC_EXIT = """\b
Exit codes:
  0  success
  1  failure: git error, refused credential, refused push, damaged backup
  2  usage error, or no sync repository in the state directory
  6  wrong passphrase or recovery code (nothing was read or written)
  7  the remote is older than what this machine last saw (rollback); --allow-rollback
  8  fork: the remote's history does not hold what this machine saw; --accept-fork
  9  the remote has a generation this machine has not pulled, or another device
     pushed first; pull first
  10 the push would drop more records than --max-shrink allows; --allow-shrink
\b
Secrets come from the environment, never from the command line:
  VEXRUN_GIT_TOKEN      the forge token (else your own git credential helper)
  VEXRUN_PASSPHRASE     the backup passphrase (or --passphrase-file, or a prompt)
  VEXRUN_RECOVERY_CODE  the recovery code, instead of the passphrase
"""

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)


def _size(value: str | None) -> int | None:
    if value is None:
        return None
    m = _SIZE.match(value)
    if not m:
        raise click.BadParameter(f"{value!r} is not a size (e.g. 8MiB, 300k, 1048576)")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def _root(ctx: click.Context) -> Path:
    from ..sync.local import default_state_dir, state_root

    value = (ctx.obj or {}).get("sync_state_dir")
    return state_root(value) if value else default_state_dir()


def _token() -> str | None:
    import os

    from ..redact import register_secret

    token = os.environ.get("VEXRUN_GIT_TOKEN") or None
    register_secret(token)
    return token


def _secrets(passphrase_file: str | None, recovery_file: str | None, *, prompt: bool = True) -> Any:
    import os

    from ..crypto.passphrase import get_secret, read_secret_file
    from ..sync.api import secrets_from_env
    from ..sync.workspace import Secrets

    recovery = read_secret_file(recovery_file, "recovery code") if recovery_file else None
    passphrase = read_secret_file(passphrase_file, "passphrase") if passphrase_file else None
    secrets: Secrets = secrets_from_env(passphrase, recovery)
    if not secrets and prompt and not os.environ.get("VEXRUN_RECOVERY_CODE"):
        secrets.passphrase = get_secret(required=True)
    return secrets


_passphrase_opt = click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the backup passphrase from this file (default: $VEXRUN_PASSPHRASE, or a prompt).",
)
_recovery_opt = click.option(
    "--recovery-code-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Unlock with the recovery code in this file (default: $VEXRUN_RECOVERY_CODE).",
)
_rollback_opt = click.option(
    "--allow-rollback", is_flag=True, help="Accept a remote older than what this machine last saw."
)
_fork_opt = click.option("--accept-fork", is_flag=True, help="Accept a remote whose history forked from ours.")
_weak_opt = click.option(
    "--weak-passphrase-ok", is_flag=True, help="Accept a new passphrase of 8 to 11 characters (12 otherwise)."
)


def _emit(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


@click.group(epilog=SYNC_EXIT)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    envvar="VEXRUN_SYNC_DIR",
    default=None,
    help="This machine's sync state (default: $XDG_STATE_HOME/vexrun/sync).",
)
@click.pass_context
def sync(ctx: click.Context, state_dir: str | None) -> None:
    """Encrypted, incremental backups of a .vmig.jsonl file in a git repository you do not have to trust.

    Restoring on a new machine needs only the git URL, the git token and the passphrase or recovery code."""
    ctx.ensure_object(dict)
    ctx.obj["sync_state_dir"] = state_dir


@sync.command("init")
@click.argument("url", required=False)
@click.option(
    "--restore",
    "restore_url",
    metavar="URL",
    is_flag=False,
    flag_value="",
    default=None,
    help="Attach to an existing backup at URL (or the --provider one).",
)
@click.option(
    "--provider",
    type=click.Choice(["github", "codeberg", "gitea", "gitlab"]),
    default=None,
    help="Instead of a URL: the forge (with --owner and --repo).",
)
@click.option("--owner", default=None, help="Repository owner (with --provider).")
@click.option("--repo", "repo_name", default=None, help="Repository name (with --provider).")
@click.option("--host", default=None, help="Server name for gitea/forgejo or self-hosted gitlab.")
@click.option("--username", default=None, help="Username sent with the token (default depends on the provider).")
@click.option("--branch", default="main", show_default=True, help="Branch holding the backup.")
@click.option(
    "--label", default="", help="This device's name in `sync log`, and the passphrase key file's (e.g. 'laptop')."
)
@click.option("--kdf", type=click.Choice(["argon2id", "scrypt"]), default=None, help="Passphrase KDF.")
@click.option("--bucket-size", default=None, help="Target plaintext per object (default 8MiB).")
@click.option("--max-object-size", default=None, help="Largest object file (default 32MiB; below your forge's limit).")
@click.option("--expect-generation", type=int, default=None, help="With --restore: refuse any other generation.")
@_passphrase_opt
@_recovery_opt
@_weak_opt
@click.pass_context
def sync_init(
    ctx: click.Context,
    url: str | None,
    restore_url: str | None,
    provider: str | None,
    owner: str | None,
    repo_name: str | None,
    host: str | None,
    username: str | None,
    branch: str,
    label: str,
    kdf: str | None,
    bucket_size: str | None,
    max_object_size: str | None,
    expect_generation: int | None,
    passphrase_file: str | None,
    recovery_code_file: str | None,
    weak_passphrase_ok: bool,
) -> int:
    """Create a new encrypted backup at URL, or attach this machine to one with --restore URL.

    A new backup prints a one-time recovery code: write it down. There is no recovery without the
    passphrase or the recovery code."""
    from ..crypto.passphrase import get_secret
    from ..sync.engine import init_new, init_restore
    from ..sync.remote import resolve_remote

    if url and restore_url:
        raise click.UsageError("give URL (a new backup) or --restore URL, not both")
    remote = resolve_remote(
        url=url or restore_url,
        provider=provider,
        owner=owner,
        repo=repo_name,
        host=host,
        username=username,
        branch=branch,
    )
    root = _root(ctx)
    token = _token()
    if restore_url is not None:
        res = init_restore(
            root, remote, token=token, secrets=_secrets(passphrase_file, recovery_code_file),
            expect_generation=expect_generation, label=label,
        )  # fmt: skip
        m = res.manifest
        click.echo(f"attached {root} to {remote.url} (repo {res.repo_id})")
        click.echo(
            f"trusting generation {res.generation} created {m.get('created_at')} by device {m.get('device_id')} "
            f"({m.get('records', 0):,} records); check it if you can"
        )
        return 0
    passphrase = get_secret(file=passphrase_file, confirm=True, weak_ok=weak_passphrase_ok)
    assert passphrase is not None
    res = init_new(
        root, remote, token=token, passphrase=passphrase, label=label, kdf_alg=kdf,
        bucket_target=_size(bucket_size), max_object=_size(max_object_size),
    )  # fmt: skip
    click.echo(f"created backup {res.repo_id} at {remote.url} (generation 1, state in {root})")
    click.echo("")
    click.echo("RECOVERY CODE (shown once; write it down and keep it apart from the passphrase):")
    click.echo(f"    {res.recovery_code}")
    click.echo("")
    click.echo("Without the passphrase or this code nobody, including you, can decrypt the backup.")
    return 0


@sync.command("push")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--from-recipe", "recipe", type=click.Path(dir_okay=False), default=None, help="Push this recipe's vmig output."
)
@click.option("--env-file", type=click.Path(dir_okay=False), default=None, help="With --from-recipe: a dotenv file.")
@click.option(
    "--compression", type=click.Choice(["none", "zlib"]), default="none", show_default=True, help="Before encryption."
)
@click.option("--max-shrink", metavar="SHARE", help="Refuse a push dropping more than this share of records (10%).")
@click.option("--allow-shrink", is_flag=True, help="Push even if the file has far fewer records than the backup.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_passphrase_opt
@_recovery_opt
@_rollback_opt
@_fork_opt
@click.pass_context
def sync_push(
    ctx: click.Context,
    file: str | None,
    recipe: str | None,
    env_file: str | None,
    compression: str,
    max_shrink: str | None,
    allow_shrink: bool,
    as_json: bool,
    passphrase_file: str | None,
    recovery_code_file: str | None,
    allow_rollback: bool,
    accept_fork: bool,
) -> int:
    """Encrypt FILE (or --from-recipe RECIPE's .vmig.jsonl target) as the next generation and push it.

    Only changed buckets are re-encrypted and uploaded; the objects kept from the last generation are
    checked first (size and key commitment) and uploaded again if damaged. Never forces: if another device
    pushed first, pull first. A file with more than 10% fewer records than the backup is refused (exit 10)."""
    from ..sync.engine import DEFAULT_MAX_SHRINK, push
    from ..sync.settings import parse_share

    if bool(file) == bool(recipe):
        raise click.UsageError("give FILE or --from-recipe RECIPE")
    if allow_shrink and max_shrink is not None:
        raise click.UsageError("give --max-shrink or --allow-shrink, not both")
    path = Path(file) if file else _recipe_target(recipe, env_file)  # type: ignore[arg-type]
    try:
        shrink = None if allow_shrink else parse_share(max_shrink) if max_shrink is not None else DEFAULT_MAX_SHRINK
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-shrink") from None
    res = push(
        _root(ctx), path, token=_token(), secrets=_secrets(passphrase_file, recovery_code_file),
        allow_rollback=allow_rollback, accept_fork=accept_fork, compression=compression, max_shrink=shrink,
    )  # fmt: skip
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        _emit(res.__dict__)
    elif res.unchanged:
        click.echo(f"unchanged: the backup already holds {path.name} (generation {res.generation}); nothing pushed")
    else:
        click.echo(
            f"pushed generation {res.generation}: {res.objects_uploaded} of {res.objects_total} objects uploaded, "
            f"{res.bytes_pushed:,} bytes, {res.records:,} records"
        )
    return 0


def _recipe_target(recipe: str, env_file: str | None) -> Path:
    """The first .vmig.jsonl target of ``recipe``: the file the recipe's own ``sync:`` stage pushes."""
    from ..recipe.outputs import file_outputs

    return file_outputs(recipe, env_file=env_file)[0]


@sync.command("pull")
@click.option("--out", type=click.Path(), default=None, help="Where to write the file (default: its name, here).")
@click.option("--expect-generation", type=int, default=None, help="Refuse any other generation.")
@click.option("--generation", type=click.IntRange(min=1), metavar="N", help="Restore generation N (see `sync log`).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_passphrase_opt
@_recovery_opt
@_rollback_opt
@_fork_opt
@click.pass_context
def sync_pull(
    ctx: click.Context,
    out: str | None,
    expect_generation: int | None,
    generation: int | None,
    as_json: bool,
    passphrase_file: str | None,
    recovery_code_file: str | None,
    allow_rollback: bool,
    accept_fork: bool,
) -> int:
    """Restore the backup's current generation (or --generation N) into a .vmig.jsonl file, with its sidecar
    and signature (atomically; checked end to end)."""
    from ..sync.engine import pull

    res = pull(
        _root(ctx), Path(out) if out else None, token=_token(), secrets=_secrets(passphrase_file, recovery_code_file),
        allow_rollback=allow_rollback, accept_fork=accept_fork, expect_generation=expect_generation,
        generation=generation,
    )  # fmt: skip
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        _emit(res.__dict__)
    elif res.path is not None:
        click.echo(f"restored generation {res.generation} to {res.path} ({res.size:,} bytes, {res.records:,} records)")
    return 0


@sync.command("status")
@click.option("--no-fetch", is_flag=True, help="Do not contact the remote; show the last fetched state.")
@click.option("--verify", "verify_mac", is_flag=True, help="Check the status MAC (needs the passphrase).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_passphrase_opt
@click.pass_context
def sync_status(
    ctx: click.Context, no_fetch: bool, verify_mac: bool, as_json: bool, passphrase_file: str | None
) -> int:
    """Show the backup's generation, records and size, and how it compares to this machine (no passphrase)."""
    from ..sync.admin import status

    secrets = _secrets(passphrase_file, None) if verify_mac else None
    st = status(_root(ctx), token=_token(), secrets=secrets, fetch=not no_fetch)
    if as_json:
        _emit(st)
        return 0
    verified = {None: "not verified (no passphrase)", True: "MAC verified", False: "MAC MISMATCH"}[
        st["status_verified"]
    ]
    click.echo(f"remote:      {st['url']} ({st['branch']}), repo {st['repo_id']}, epoch {st['epoch']}")
    click.echo(f"generation:  {st['remote_generation']}, {st['records']:,} records, {st['created_at']} [{verified}]")
    seen = st["seen_generation"]
    click.echo(f"this machine: {'generation ' + str(seen) + ' seen ' + str(st['seen_at']) if seen else 'never synced'}")
    click.echo(f"state:       {st['state']}")
    click.echo(f"repository:  {st['repo_bytes'] / 1048576:.1f} MiB on this machine")
    if st["suggest_compact"]:
        click.echo("hint: the repository is past 500 MiB; `vexrun sync compact` drops old generations")
    return 0


@sync.command("diff")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_passphrase_opt
@_recovery_opt
@click.pass_context
def sync_diff(
    ctx: click.Context, file: str, as_json: bool, passphrase_file: str | None, recovery_code_file: str | None
) -> int:
    """What `sync push FILE` would change, in records and buckets (nothing is pushed)."""
    from ..sync.admin import diff

    d = diff(_root(ctx), Path(file), token=_token(), secrets=_secrets(passphrase_file, recovery_code_file))
    if as_json:
        _emit(d.__dict__)
        return 0
    for note in d.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"against generation {d.generation}:")
    click.echo(
        f"  records: +{d.records_added} -{d.records_removed} ~{d.records_changed} ({d.records_unchanged} unchanged)"
    )
    click.echo(
        f"  buckets: {d.buckets_changed} changed, {d.buckets_added} added, {d.buckets_removed} removed, "
        f"{d.buckets_unchanged} unchanged"
    )
    click.echo(f"  a push would upload {d.objects_to_upload} object(s), about {d.bytes_to_upload:,} bytes")
    return 0


@sync.command("log")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N generations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_passphrase_opt
@_recovery_opt
@click.pass_context
def sync_log(
    ctx: click.Context, limit: int | None, as_json: bool, passphrase_file: str | None, recovery_code_file: str | None
) -> int:
    """List the generations the backup still holds, newest first (restore one with `sync pull --generation N`)."""
    from ..sync.admin import log

    gens = log(_root(ctx), token=_token(), secrets=_secrets(passphrase_file, recovery_code_file), limit=limit)
    if as_json:
        _emit([g.to_json() for g in gens])
        return 0
    click.echo(f"{'gen':>5}  {'created':<20}  {'records':>10}  {'bytes':>14}  device")
    for g in gens:
        records, size = (f"{v:,}" if v is not None else "?" for v in (g.records, g.bytes))
        mark = " (current)" if g.current else ""
        note = f"  [{g.note}]" if g.note else ""
        click.echo(f"{g.generation:>5}  {g.created_at or '?':<20}  {records:>10}  {size:>14}  {g.device}{mark}{note}")
    return 0


@sync.command("check")
@click.option("--read-data", is_flag=True, help="Also decrypt and verify every object (reads the whole backup).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_passphrase_opt
@_recovery_opt
@click.pass_context
def sync_check(
    ctx: click.Context, read_data: bool, as_json: bool, passphrase_file: str | None, recovery_code_file: str | None
) -> int:
    """Check that the current generation is whole: the manifest, and every object it lists present with its
    authenticated size and key commitment; with --read-data, every object decrypted and verified.
    Exit 0 when clean, 1 with the list of what is broken."""
    from ..sync.check import check

    res = check(_root(ctx), token=_token(), secrets=_secrets(passphrase_file, recovery_code_file), read_data=read_data)
    if as_json:
        _emit({**res.__dict__, "ok": res.ok})
        return 0 if res.ok else 1
    for warning in res.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in res.problems:
        click.echo(f"broken: {problem}")
    what = "structure and data" if read_data else "structure (--read-data also decrypts every object)"
    verdict = "no problems" if res.ok else f"{len(res.problems)} problem(s)"
    read = f", {res.bytes_read:,} bytes read" if read_data else ""
    click.echo(f"generation {res.generation}: {res.objects} objects, {what}: {verdict} ({res.seconds:.2f}s{read})")
    return 0 if res.ok else 1


@sync.group("keys")
def sync_keys() -> None:
    """The key files that unlock the backup (passphrases and recovery codes)."""


@sync_keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def sync_keys_list(ctx: click.Context, as_json: bool) -> int:
    """List the backup's key files (no passphrase needed)."""
    from ..sync.admin import keys_list

    rows = keys_list(_root(ctx), token=_token())
    if as_json:
        _emit(rows)
        return 0
    for r in rows:
        click.echo(f"{r['key_id']}  {r['kind']:<10}  {r['kdf']:<11}  {r['created_at']}  {r['label']}")
    return 0


@sync_keys.command("add")
@click.option("--recovery", is_flag=True, help="Add a new recovery code instead of a passphrase.")
@click.option(
    "--new-passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="The new passphrase (default: $VEXRUN_NEW_PASSPHRASE, or a prompt).",
)
@click.option("--label", default="", help="A label for the new key file.")
@_passphrase_opt
@_recovery_opt
@_weak_opt
@click.pass_context
def sync_keys_add(
    ctx: click.Context,
    recovery: bool,
    new_passphrase_file: str | None,
    label: str,
    passphrase_file: str | None,
    recovery_code_file: str | None,
    weak_passphrase_ok: bool,
) -> int:
    """Add a passphrase (e.g. to change it: add the new one, then remove the old) or a recovery code."""
    from ..crypto.passphrase import get_secret
    from ..sync.admin import keys_add

    secrets = _secrets(passphrase_file, recovery_code_file)
    new = None
    if not recovery:
        new = get_secret(
            what="new passphrase", env="VEXRUN_NEW_PASSPHRASE", file=new_passphrase_file, confirm=True,
            file_option="--new-passphrase-file", weak_ok=weak_passphrase_ok,
        )  # fmt: skip
    key_id, code = keys_add(
        _root(ctx), token=_token(), secrets=secrets, new_passphrase=new, recovery=recovery, label=label
    )
    click.echo(f"added key {key_id}")
    if code:
        click.echo(f"RECOVERY CODE (shown once): {code}")
    return 0


@sync_keys.command("remove")
@click.argument("key_id")
@_passphrase_opt
@_recovery_opt
@click.pass_context
def sync_keys_remove(
    ctx: click.Context, key_id: str, passphrase_file: str | None, recovery_code_file: str | None
) -> int:
    """Remove a key file. It stays in git history until `sync compact`; after a leak, use `sync rekey`."""
    from ..sync.admin import keys_remove

    left = keys_remove(_root(ctx), key_id, token=_token(), secrets=_secrets(passphrase_file, recovery_code_file))
    click.echo(f"removed key {key_id}; {left} key(s) left")
    click.echo("note: the old key file stays in git history; anyone with it and its secret can still open "
               "old generations (sync rekey + sync compact after a leak)", err=True)  # fmt: skip
    return 0


@sync.command("rekey")
@click.option(
    "--new-passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="The new passphrase (default: $VEXRUN_NEW_PASSPHRASE, or a prompt).",
)
@click.option("--label", default="", help="A label for the new passphrase key file.")
@_passphrase_opt
@_recovery_opt
@_weak_opt
@click.pass_context
def sync_rekey(
    ctx: click.Context,
    new_passphrase_file: str | None,
    label: str,
    passphrase_file: str | None,
    recovery_code_file: str | None,
    weak_passphrase_ok: bool,
) -> int:
    """After a suspected compromise: a new master key, every object re-encrypted, new key files and a new
    recovery code. Then run `sync compact` to drop the old ciphertext from the branch's history."""
    from ..crypto.passphrase import get_secret
    from ..sync.admin import rekey

    secrets = _secrets(passphrase_file, recovery_code_file)
    new = get_secret(
        what="new passphrase", env="VEXRUN_NEW_PASSPHRASE", file=new_passphrase_file, confirm=True,
        file_option="--new-passphrase-file", weak_ok=weak_passphrase_ok,
    )  # fmt: skip
    assert new is not None
    gen, code = rekey(_root(ctx), token=_token(), secrets=secrets, new_passphrase=new, label=label)
    click.echo(f"rekeyed: generation {gen} under a new master key")
    click.echo(f"NEW RECOVERY CODE (shown once; the old one no longer works): {code}")
    click.echo("next: vexrun sync compact (forks, clones and forge caches may still hold old ciphertext)")
    return 0


@sync.command("compact")
@click.option("--keep", type=click.IntRange(min=1), default=7, show_default=True, help="Generations kept restorable.")
@click.option("--yes", is_flag=True, help="Confirm the forced push without a prompt.")
@click.pass_context
def sync_compact(ctx: click.Context, keep: int, yes: bool) -> int:
    """Drop the branch's history older than the last --keep generations (a confirmed, lease-checked force
    push: the only one vexrun ever makes). Generations from before a `sync rekey` are always dropped, with
    the old key files. Other machines keep working; their history is just shorter."""
    import sys

    from ..sync.admin import compact

    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("compact rewrites the remote's history: confirm with --yes")
        click.confirm(f"Rewrite the remote branch to its last {keep} generation(s) (force push)?", abort=True)
    res = compact(_root(ctx), token=_token(), keep=keep)
    if not res.changed:
        click.echo(f"nothing to compact: the history holds {res.kept_range} only")
        return 0
    click.echo(f"compacted: {res.old[:12]} → {res.new[:12]}, keeping {res.kept_range}; {res.dropped_commits} "
               "commit(s) dropped")  # fmt: skip
    return 0


COMMANDS = [sync]
