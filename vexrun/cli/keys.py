"""Signing verbs: ``keys generate|list|export|trust``, ``sign``, ``verify``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

__all__ = ["COMMANDS"]

VERIFY_EXIT = """\b
Exit codes:
  0  valid: a good signature by a trusted key, and the digest and size match
  1  tampered: the digest or size differs, or the signature is bad;
     or refused: older than --max-age (stale), or signed for another
     name than --expect-name (the file itself is intact)
  2  usage error
  3  signature file missing, malformed, or of an unsupported version or type
  4  no trusted key matches (unknown or untrusted key)
  5  I/O error reading the file or the signature
"""


def _echo_warnings(warnings: list[str]) -> None:
    from ..redact import redact

    for w in warnings:
        click.echo(f"warning: {redact(w)}", err=True)


@click.group()
def keys() -> None:
    """Manage Ed25519 signing keys in $XDG_CONFIG_HOME/vexrun/keys (secret keys mode 0600)."""


@keys.command("generate")
@click.option("--no-passphrase", is_flag=True, help="Store the secret key unencrypted (for CI); prints a warning.")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the passphrase from this file (default: $VEXRUN_PASSPHRASE, or a prompt).",
)
@click.option("--comment", default="", help="A comment stored with the public key (e.g. who owns it).")
@click.option(
    "--kdf", type=click.Choice(["argon2id", "scrypt"]), default=None, help="Passphrase KDF (default: argon2id)."
)
@click.option(
    "--weak-passphrase-ok",
    is_flag=True,
    help="Accept a passphrase of 8 to 11 characters (12 are required otherwise).",
)
def keys_generate(
    no_passphrase: bool, passphrase_file: str | None, comment: str, kdf: str | None, weak_passphrase_ok: bool
) -> int:
    """Create a new signing key pair; print its key id and where the files are.

    The passphrase needs at least 12 characters (a few random words)."""
    from ..crypto.keys import generate_key
    from ..crypto.passphrase import get_secret

    passphrase = None
    if no_passphrase:
        click.echo("warning: the secret key is stored without a passphrase; protect the file yourself", err=True)
    else:
        passphrase = get_secret(file=passphrase_file, confirm=True, weak_ok=weak_passphrase_ok)
        if passphrase is None:  # pragma: no cover - required=True raises instead
            return 2
    public, key_path, pub_path = generate_key(passphrase=passphrase, comment=comment, kdf_alg=kdf)
    click.echo(f"key id:     {public.keyid}")
    click.echo(f"secret key: {key_path}")
    click.echo(f"public key: {pub_path}")
    click.echo(public.line())
    return 0


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_list(as_json: bool) -> int:
    """List your signing keys and the trusted public keys."""
    from ..crypto.keys import list_public_keys
    from ..crypto.paths import keys_dir, trust_dir

    own = list_public_keys(keys_dir())
    trusted = list_public_keys(trust_dir())
    if as_json:
        rows: list[dict[str, Any]] = [
            {"keyid": k.keyid, "kind": kind, "comment": k.comment, "path": k.source}
            for kind, ks in (("own", own), ("trusted", trusted))
            for k in ks
        ]
        click.echo(json.dumps(rows, indent=2))
        return 0
    click.echo(f"own keys ({keys_dir()}):")
    for k in own:
        click.echo(f"  {k.keyid}  {k.comment}".rstrip())
    if not own:
        click.echo("  (none; vexrun keys generate)")
    click.echo(f"trusted keys ({trust_dir()}):")
    for k in trusted:
        click.echo(f"  {k.keyid}  {k.comment}".rstrip())
    if not trusted:
        click.echo("  (none)")
    return 0


@keys.command("export")
@click.argument("keyid", required=False)
def keys_export(keyid: str | None) -> int:
    """Print the public key line of KEYID (default: your only key), to share with verifiers."""
    from ..crypto.errors import KeyFileError
    from ..crypto.keys import list_public_keys
    from ..crypto.paths import keys_dir

    own = list_public_keys(keys_dir())
    chosen = [k for k in own if keyid in (None, k.keyid)]
    if not chosen:
        raise KeyFileError(f"no public key {keyid or ''} in {keys_dir()}".replace("  ", " "), hint="vexrun keys list")
    if keyid is None and len(chosen) > 1:
        raise KeyFileError(f"{len(chosen)} keys in {keys_dir()}; name one: vexrun keys export KEYID")
    click.echo(chosen[0].line())
    return 0


@keys.command("trust")
@click.argument("pubfile", type=click.Path(dir_okay=False, exists=True))
def keys_trust(pubfile: str) -> int:
    """Add the public key(s) in PUBFILE to the trust directory used by `vexrun verify`."""
    from pathlib import Path

    from ..crypto.keys import file_stem, load_public_keys
    from ..crypto.paths import trust_dir
    from ..crypto.securefile import ensure_private_dir, write_public

    directory = ensure_private_dir(trust_dir())
    for key in load_public_keys(Path(pubfile)):
        write_public(directory / f"{file_stem(key.keyid)}.pub", (key.line() + "\n").encode("utf-8"))
        click.echo(f"trusted {key.keyid} {key.comment}".rstrip())
    return 0


_from_recipe = click.option(
    "--from-recipe",
    "recipe",
    metavar="RECIPE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Instead of FILE: every .vmig.jsonl target this recipe writes.",
)
_recipe_env_file = click.option(
    "--env-file", type=click.Path(dir_okay=False), default=None, help="With --from-recipe: a dotenv file."
)


def _targets(file: str | None, recipe: str | None, env_file: str | None, **single: str | None) -> list[str]:
    """FILE, or the .vmig.jsonl outputs of --from-recipe RECIPE (exactly one of the two). ``single`` names the
    options that only make sense for one file (``--out``, ``--sig``)."""
    if bool(file) == bool(recipe):
        raise click.UsageError("give FILE or --from-recipe RECIPE (one of the two)")
    if env_file and not recipe:
        raise click.UsageError("--env-file goes with --from-recipe")
    if not recipe:
        return [str(file)]
    for name, value in single.items():
        if value is not None:
            raise click.UsageError(f"--{name} goes with FILE, not --from-recipe (each target has its own)")
    from ..recipe.outputs import file_outputs

    return [str(path) for path in file_outputs(recipe, env_file=env_file)]


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@_from_recipe
@_recipe_env_file
@click.option("--key", default=None, help="Key id (vx1:…) or key file (default: your only key).")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the key's passphrase from this file (default: $VEXRUN_PASSPHRASE, or a prompt).",
)
@click.option("--comment", default=None, help="Free text, signed along with the digest.")
@click.option("--sha256", is_flag=True, help="Also sign a SHA-256 digest (slower; for sha256sum users).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Signature path (default: FILE.sig).")
def sign(
    file: str | None,
    recipe: str | None,
    env_file: str | None,
    key: str | None,
    passphrase_file: str | None,
    comment: str | None,
    sha256: bool,
    out: str | None,
) -> int:
    """Sign a .vmig.jsonl FILE: write the detached envelope FILE.sig (BLAKE3 digest, size, records, metadata).

    With --from-recipe RECIPE instead of FILE, signs every .vmig.jsonl target the recipe writes (run it first).
    """
    from ..crypto.keys import find_secret_key, needs_passphrase
    from ..crypto.passphrase import get_secret
    from ..crypto.sign import sign_file_detailed

    files = _targets(file, recipe, env_file, out=out)
    key_path = find_secret_key(key)
    passphrase = get_secret(file=passphrase_file) if needs_passphrase(key_path) else None
    for path in files:
        result = sign_file_detailed(
            path, key=str(key_path), passphrase=passphrase, comment=comment, sha256=sha256, output=out
        )
        _echo_warnings(result.warnings)
        st = result.statement
        click.echo(
            f"signed {st['file']['name']} ({st['file']['size']:,} bytes, {st['records']:,} records) with {result.keyid}"
        )
        click.echo(f"wrote {result.path}")
    return 0


def _max_age(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from ..crypto.verify import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(epilog=VERIFY_EXIT)
@click.argument("file", required=False, type=click.Path(readable=False))
@_from_recipe
@_recipe_env_file
@click.option("--sig", type=click.Path(readable=False), default=None, help="The signature (default: FILE.sig).")
@click.option("--pubkey", type=click.Path(dir_okay=False), default=None, help="Trust only this public key file.")
@click.option(
    "--trust-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Trust the *.pub keys in this directory (default: $XDG_CONFIG_HOME/vexrun/trusted_keys and your own keys).",
)
@click.option(
    "--max-age",
    metavar="DURATION",
    callback=_max_age,
    default=None,
    help="Refuse a signature made longer ago than this: 90s, 45m, 36h, 7d, 2w (a bare number is seconds).",
)
@click.option("--expect-name", metavar="NAME", default=None, help="Refuse a signature made for another file name.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(
    file: str | None,
    recipe: str | None,
    env_file: str | None,
    sig: str | None,
    pubkey: str | None,
    trust_dir: str | None,
    max_age: Any,
    expect_name: str | None,
    as_json: bool,
) -> int:
    """Check FILE against its signature: a trusted key, then the streamed BLAKE3 digest and size.

    With --from-recipe RECIPE instead of FILE, checks every .vmig.jsonl target the recipe writes, stopping at
    the first that fails. --max-age and --expect-name are checked once the signature and the file are good.
    """
    from pathlib import Path

    from ..crypto.errors import KeyFileError, VerifyError
    from ..crypto.keys import load_public_keys
    from ..crypto.verify import verify_file
    from ..errors import UsageError
    from ..redact import redact

    if pubkey and trust_dir:
        raise click.UsageError("give --pubkey or --trust-dir, not both")
    files = _targets(file, recipe, env_file, sig=sig)
    keys_ = None
    if pubkey:
        try:
            keys_ = load_public_keys(Path(pubkey))
        except KeyFileError as exc:
            raise UsageError(f"--pubkey: {exc}") from None
    results: list[dict[str, Any]] = []
    code = 0
    for path in files:
        try:
            result = verify_file(
                path,
                sig=sig,
                pubkeys=keys_,
                trust=Path(trust_dir) if trust_dir else None,
                max_age=max_age,
                expect_name=expect_name,
            )
        except (VerifyError, UsageError) as exc:
            if not as_json:
                raise
            code = exc.exit_code
            results.append({"valid": False, "exit_code": code, "error": redact(str(exc))})
            break
        if as_json:
            results.append(result.to_json())
            continue
        _echo_warnings(result.warnings)
        st = result.statement
        out = sys.stdout
        out.write(f"valid: {result.file} signed by {result.keyid} ({result.key_source})\n")
        out.write(f"  name {st['file']['name']}, {st['file']['size']:,} bytes, records {st.get('records')}\n")
        out.write(f"  created {st.get('created_at')}, signed {st.get('signed_at')}\n")
        if st.get("comment"):
            out.write(f"  comment: {redact(str(st['comment']))}\n")
    if as_json:
        click.echo(json.dumps(results[0] if len(files) == 1 else results, indent=2, ensure_ascii=False))
    return code


COMMANDS = [keys, sign, verify]
