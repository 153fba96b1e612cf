"""Findings and failures where reviewers look: ``validate FILE... --format github|gitlab``, ``plan --format
markdown``, workflow-command annotations of every failed command under Actions, and ``verify --max-age`` /
``--expect-name`` / ``sign|verify --from-recipe`` (the checks a CI job runs on the export it just made)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_cli
from vexrun.cli.annotate import (
    escape_data,
    escape_property,
    github_line,
    gitlab_item,
    unreadable_annotation,
)
from vexrun.testing.data import write_synthetic

#: No annotations unless a test asks for them, whatever the environment the tests run in (CI sets this).
QUIET = {"GITHUB_ACTIONS": None, "VEXRUN_ANNOTATE": None}
ACTIONS = {"GITHUB_ACTIONS": "true", "VEXRUN_ANNOTATE": None}

THREE_ERRORS = """\
version: 1
mode: fast
source:
  type: vmig
  path: in.vmig.jsonl
target:
  type: vmig
  path: out.vmig.jsonl
  compres: true
run:
  batch_size: 0
"""
GOOD = "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: vmig, path: out/m.vmig.jsonl}\n"


def _where(text: str, key: str) -> tuple[int, int]:
    """Line and column (1-based) of ``key:`` in a YAML text: where vexrun reports a finding about it."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(f"{key}:"):
            return number, len(line) - len(line.lstrip()) + 1
    raise AssertionError(key)


def _annotations(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("::")]


def _bad_vmig(path: Path) -> Path:
    """A .vmig.jsonl file with one error (a duplicate id on line 2) and two warnings (no vex_version)."""
    path.write_text('{"id": "a", "text": "t"}\n{"id": "a", "text": "u"}\n')
    return path


# -- validate --format github / gitlab ---------------------------------------------------------------------------


def test_github_format_puts_each_of_three_errors_on_its_line(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(THREE_ERRORS)
    res = run_cli("validate", "--format", "github", "team.yaml", cwd=tmp_path, env=QUIET)
    assert res.code == 1, res.output
    lines = _annotations(res.out)
    assert len(lines) == 3 and all(line.startswith("::error ") for line in lines), res.out
    expected = [("mode", "bad-value", "mode"), ("compres", "unknown-field", "target.compres")]
    expected.append(("batch_size", "bad-value", "run.batch_size"))
    for line, (key, code, path) in zip(lines, expected, strict=True):
        row, col = _where(THREE_ERRORS, key)
        assert line.startswith(f"::error file=team.yaml,line={row},col={col},title=vexrun validate [{code}]::{path}: ")
    # after the annotations, the summary line of the text format
    assert res.out.splitlines()[-1] == "team.yaml: INVALID: 3 problems"


def test_gitlab_format_is_a_code_quality_report(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(THREE_ERRORS)
    data = _bad_vmig(tmp_path / "m.vmig.jsonl")
    (tmp_path / "m.vmig.jsonl.meta.json").write_text('{"record_count": 5}')  # a whole-file finding (line 0)
    res = run_cli("validate", "--format", "gitlab", "team.yaml", data.name, cwd=tmp_path, env=QUIET)
    assert res.code == 1, res.output
    items = json.loads(res.out)
    recipe = [i for i in items if i["location"]["path"] == "team.yaml"]
    lines = [_where(THREE_ERRORS, key)[0] for key in ("mode", "compres", "batch_size")]
    assert [i["location"]["lines"]["begin"] for i in recipe] == lines
    assert [i["check_name"] for i in recipe] == ["vexrun/bad-value", "vexrun/unknown-field", "vexrun/bad-value"]
    assert {i["severity"] for i in recipe} == {"major"}
    assert recipe[1]["description"].startswith("target.compres: unknown field")
    vmig = {(i["check_name"], i["location"]["lines"]["begin"], i["severity"]) for i in items if i not in recipe}
    assert vmig == {
        ("vexrun/count-mismatch", 1, "major"),  # line 0 (the whole file) is reported at line 1
        ("vexrun/duplicate-id", 2, "major"),
        ("vexrun/missing-version", 1, "minor"),
        ("vexrun/missing-version", 2, "minor"),
    }
    fingerprints = [i["fingerprint"] for i in items]
    assert len(set(fingerprints)) == len(items) and all(re.fullmatch(r"[0-9a-f]{64}", f) for f in fingerprints)


def test_a_good_recipe_and_a_bad_data_file_at_once(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "in.vmig.jsonl").write_text('{"id": "a", "text": "t", "vex_version": "1.0.0"}\n')  # no missing-source
    _bad_vmig(tmp_path / "bad.vmig.jsonl")
    text = run_cli("validate", "good.yaml", "bad.vmig.jsonl", cwd=tmp_path, env=QUIET)
    assert text.code == 1, text.output
    assert "good.yaml: valid: mode raw" in text.out
    assert "bad.vmig.jsonl:2: error[duplicate-id] record 'a': id already used on line 1" in text.out
    assert "bad.vmig.jsonl: INVALID: 2 records, 1 error, 2 warnings, 1 duplicate id" in text.out
    github = run_cli("validate", "--format", "github", "good.yaml", "bad.vmig.jsonl", cwd=tmp_path, env=QUIET)
    assert github.code == 1
    assert (
        "::error file=bad.vmig.jsonl,line=2,title=vexrun validate [duplicate-id]::record 'a': id already" in github.out
    )
    assert "::warning file=bad.vmig.jsonl,line=1,title=vexrun validate [missing-version]::" in github.out
    assert "good.yaml: valid: mode raw" in github.out and not any("good.yaml" in a for a in _annotations(github.out))
    reports = json.loads(run_cli("validate", "--json", "good.yaml", "bad.vmig.jsonl", cwd=tmp_path, env=QUIET).out)
    assert [(r["file"], r["valid"]) for r in reports] == [("good.yaml", True), ("bad.vmig.jsonl", False)]


def test_a_missing_file_among_others_exits_2_and_the_rest_is_checked(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    _bad_vmig(tmp_path / "bad.vmig.jsonl")
    files = ("good.yaml", "gone.vmig.jsonl", "bad.vmig.jsonl", "gone.yaml")
    text = run_cli("validate", *files, cwd=tmp_path, env=QUIET)
    assert text.code == 2, text.output
    assert "error: gone.vmig.jsonl: no such file" in text.err and "error: gone.yaml: no such file" in text.err
    assert "good.yaml: valid" in text.out and "bad.vmig.jsonl: INVALID" in text.out
    github = run_cli("validate", "--format", "github", *files, cwd=tmp_path, env=QUIET)
    assert github.code == 2
    assert (
        "::error file=gone.vmig.jsonl,title=vexrun validate [unreadable]::gone.vmig.jsonl: no such file" in github.out
    )
    assert "::error file=bad.vmig.jsonl,line=2," in github.out and "good.yaml: valid" in github.out
    gitlab = run_cli("validate", "--format", "gitlab", *files, cwd=tmp_path, env=QUIET)
    assert gitlab.code == 2
    blockers = [i["location"]["path"] for i in json.loads(gitlab.out) if i["severity"] == "blocker"]
    assert blockers == ["gone.vmig.jsonl", "gone.yaml"]
    reports = json.loads(run_cli("validate", "--json", *files, cwd=tmp_path, env=QUIET).out)
    assert [r.get("exit_code") for r in reports] == [None, 2, None, 2]
    # one file alone: as before, a usage error on stderr
    alone = run_cli("validate", "gone.yaml", cwd=tmp_path, env=QUIET)
    assert alone.code == 2 and alone.out == "" and alone.err == "error: gone.yaml: no such file\n"


def test_escaping_follows_the_actions_toolkit(tmp_path: Path) -> None:
    assert escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = github_line("warning", "x\ny", file="d/a:b,c.yaml", line=3, col=7, title="t: 1,2")
    assert line == "::warning file=d/a%3Ab%2Cc.yaml,line=3,col=7,title=t%3A 1%2C2::x%0Ay"
    assert github_line("error", "whole file", file="f", line=0, col=5) == "::error file=f::whole file"
    assert github_line("error", "m") == "::error::m"
    item = gitlab_item(unreadable_annotation("f.yaml", "f.yaml: no such file"))
    assert item["severity"] == "blocker" and item["location"] == {"path": "f.yaml", "lines": {"begin": 1}}
    # through the CLI: a file name with ':' and ',', a record id with '%'
    odd = tmp_path / "odd,name:1.vmig.jsonl"
    odd.write_text('{"id": "50%,a:b", "text": "t"}\n{"id": "50%,a:b", "text": "t"}\n')
    res = run_cli("validate", "--format", "github", odd.name, cwd=tmp_path, env=QUIET)
    assert (
        "::error file=odd%2Cname%3A1.vmig.jsonl,line=2,title=vexrun validate [duplicate-id]::"
        "record '50%25,a:b': id already used on line 1"
    ) in res.out.splitlines()


# -- plan --format markdown --------------------------------------------------------------------------------------


def test_plan_markdown_names_secrets_never_their_values(tmp_path: Path) -> None:
    canary = "sk-CANARY-5d1e9b7a42"
    (tmp_path / "in.vmig.jsonl").write_text("")
    recipe = tmp_path / "team.yaml"
    recipe.write_text(
        """version: 1
name: team-memory
source: {type: vmig, path: in.vmig.jsonl, namespace: "a|b"}
embed: {type: openai, model: text-embedding-3-small, api_key: "${CANARY_API_KEY}"}
target: {type: vmig, path: out/m.vmig.jsonl}
sync: {url: "https://git.example.com/backup.git", token: "${MISSING_TOKEN}"}
"""
    )
    res = run_cli("plan", "--format", "markdown", str(recipe), env={**QUIET, "CANARY_API_KEY": canary})
    assert res.code == 0, res.output
    md = res.out
    assert canary not in res.output
    lines = md.splitlines()
    assert lines[0] == "### vexrun plan: team-memory"
    assert f"Recipe `{recipe}` · mode `raw` · plan fingerprint `" in md
    rows = [line for line in lines if re.match(r"\| \d+ \|", line)]
    assert [row.split(" | ")[1] for row in rows] == ["source", "chunk", "ids", "embed", "graph", "store", "sync"]
    assert "`namespace: a\\|b`" in rows[0]  # a '|' in a cell is escaped
    assert "`api_key: ${CANARY_API_KEY}`" in rows[3]
    assert "| target (vmig) | ids any · metadata lists · vectors float32 · namespaces |" in lines
    assert "| `embed.api_key` | `${CANARY_API_KEY}` | set |" in lines
    assert "| `sync.token` | `${MISSING_TOKEN}` | MISSING |" in lines
    assert "**A run would start:** fresh (no checkpoint: a run starts at the beginning)" in lines
    # the text plan is unchanged and still knows the same
    text = run_cli("plan", str(recipe), env={**QUIET, "CANARY_API_KEY": canary})
    assert "embed.api_key  ${CANARY_API_KEY} (set)" in text.out and canary not in text.output


# -- annotations of failed commands under Actions ----------------------------------------------------------------


def test_failures_are_annotated_under_actions_only(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(THREE_ERRORS)
    res = run_cli("run", "team.yaml", cwd=tmp_path, env=ACTIONS)
    assert res.code == 1
    first = res.err.splitlines()[0]
    assert first.startswith("team.yaml:2:1: error[bad-value] mode:")  # the normal lines come first, unchanged
    assert "error: team.yaml: 3 problems in the recipe" in res.err
    lines = _annotations(res.err)
    assert len(lines) == 3 and _annotations(res.out) == []
    row, col = _where(THREE_ERRORS, "compres")
    assert lines[1].startswith(f"::error file=team.yaml,line={row},col={col},title=vexrun run [unknown-field]::")

    missing = run_cli("plan", "gone.yaml", cwd=tmp_path, env=ACTIONS)
    assert missing.code == 2
    assert missing.err.splitlines() == [
        "error: gone.yaml: no such file",
        "::error title=vexrun plan::gone.yaml: no such file",
    ]
    flag = run_cli("sync", "push", "--no-such-flag", cwd=tmp_path, env=ACTIONS)
    assert flag.code == 2 and _annotations(flag.err) == [
        "::error title=vexrun sync push::No such option '--no-such-flag'."
    ]
    forced = run_cli("plan", "gone.yaml", cwd=tmp_path, env={**QUIET, "VEXRUN_ANNOTATE": "github"})
    assert _annotations(forced.err) == ["::error title=vexrun plan::gone.yaml: no such file"]

    for env in (QUIET, {**ACTIONS, "VEXRUN_ANNOTATE": "off"}):
        for args in (("run", "team.yaml"), ("plan", "gone.yaml")):
            quiet = run_cli(*args, cwd=tmp_path, env=env)
            assert quiet.code in (1, 2) and "::" not in quiet.output, (env, args)


# -- verify --max-age / --expect-name, sign / verify --from-recipe -----------------------------------------------


@pytest.fixture
def signer(tmp_path: Path) -> dict[str, str | None]:
    """A key made with --no-passphrase in a private XDG_CONFIG_HOME; verify trusts the user's own keys."""
    env: dict[str, str | None] = {
        **QUIET,
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "VEXRUN_PASSPHRASE": None,
    }
    made = run_cli("keys", "generate", "--no-passphrase", env=env)
    assert made.code == 0, made.output
    return env


def test_verify_max_age_and_expect_name(
    tmp_path: Path, signer: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vexrun.vmig.sidecar
    from vexrun.crypto.sign import sign_file_detailed

    fresh = write_synthetic(tmp_path / "fresh.vmig.jsonl", 20, dims=4)
    assert run_cli("sign", str(fresh), env=signer).code == 0
    ok = run_cli("verify", str(fresh), "--max-age", "1h", "--expect-name", "fresh.vmig.jsonl", env=signer)
    assert ok.code == 0 and ok.out.startswith(f"valid: {fresh} signed by "), ok.output
    assert run_cli("verify", str(fresh), "--max-age", "90", env=signer).code == 0  # a bare number: seconds

    # the clock moved back: sign.py takes the time through vmig.sidecar.utc_now
    old = write_synthetic(tmp_path / "old.vmig.jsonl", 20, dims=4)
    monkeypatch.setattr(vexrun.vmig.sidecar, "utc_now", lambda: "2020-01-01T00:00:00Z")
    sign_file_detailed(old, keys_directory=tmp_path / "cfg" / "vexrun" / "keys")
    monkeypatch.undo()
    assert run_cli("verify", str(old), env=signer).code == 0  # a good signature, just old
    stale = run_cli("verify", str(old), "--max-age", "36h", env=signer)
    assert stale.code == 1, stale.output
    said = rf"error: {re.escape(str(old))}: signed \d+d( \d+h)? ago \(signed_at 2020-01-01T00:00:00Z\), more than"
    assert re.search(said + r" the 1d 12h allowed", stale.err), stale.err  # the file, the age and the limit
    stale_json = json.loads(run_cli("verify", "--json", str(old), "--max-age", "2w", env=signer).out)
    assert stale_json["valid"] is False and stale_json["exit_code"] == 1 and "14d allowed" in stale_json["error"]

    renamed = tmp_path / "renamed.vmig.jsonl"
    fresh.rename(renamed)
    (tmp_path / "fresh.vmig.jsonl.sig").rename(tmp_path / "renamed.vmig.jsonl.sig")
    wrong = run_cli("verify", str(renamed), "--expect-name", "renamed.vmig.jsonl", env=signer)
    assert wrong.code == 1
    assert (
        f"{renamed}: the signature was made for a file named 'fresh.vmig.jsonl', not 'renamed.vmig.jsonl'" in wrong.err
    )
    right = run_cli("verify", str(renamed), "--expect-name", "fresh.vmig.jsonl", env=signer)
    assert right.code == 0 and "signed as 'fresh.vmig.jsonl'" in right.err  # the rename warning stays

    for bad in ("soon", "7y", "-1h"):
        usage = run_cli("verify", str(renamed), "--max-age", bad, env=signer)
        assert usage.code == 2 and "--max-age" in usage.err, usage.output

    annotated = run_cli("verify", str(old), "--max-age", "1d", env={**signer, **ACTIONS})
    assert annotated.code == 1 and _annotations(annotated.err)[0].startswith("::error title=vexrun verify::")


def test_sign_and_verify_from_recipe(tmp_path: Path, signer: dict[str, str | None]) -> None:
    recipe = tmp_path / "team.yaml"
    recipe.write_text(
        """version: 1
source: {type: vmig, path: in.vmig.jsonl}
targets:
  - {type: vmig, path: out/a.vmig.jsonl}
  - {type: sqlite, path: out/m.db}
  - {type: vmig, path: "${OUT_DIR}/b.vmig.jsonl"}
"""
    )
    env = {**signer, "OUT_DIR": None}
    (tmp_path / "vars.env").write_text("OUT_DIR=out\n")
    (tmp_path / "out").mkdir()
    a = write_synthetic(tmp_path / "out" / "a.vmig.jsonl", 10, dims=4)
    b = write_synthetic(tmp_path / "out" / "b.vmig.jsonl", 12, dims=4, seed=1)
    signed = run_cli("sign", "--from-recipe", str(recipe), "--env-file", "vars.env", cwd=tmp_path, env=env)
    assert signed.code == 0, signed.output
    assert f"wrote {a}.sig" in signed.out and f"wrote {b}.sig" in signed.out
    from_recipe = ("--from-recipe", "team.yaml", "--env-file", "vars.env")
    verified = run_cli("verify", *from_recipe, "--max-age", "1h", cwd=tmp_path, env=env)
    assert verified.code == 0, verified.output
    assert [line.split(" signed by")[0] for line in verified.out.splitlines() if line.startswith("valid:")] == [
        f"valid: {a}",
        f"valid: {b}",
    ]
    as_json = run_cli("verify", "--json", *from_recipe, cwd=tmp_path, env=env)
    assert [r["file"] for r in json.loads(as_json.out)] == [str(a), str(b)]

    b.write_bytes(b.read_bytes().replace(b'"id"', b'"Id"', 1))
    tampered = run_cli("verify", *from_recipe, cwd=tmp_path, env=env)
    assert tampered.code == 1 and f"valid: {a}" in tampered.out and str(b) in tampered.err

    for args in (
        ("verify",),  # neither FILE nor --from-recipe
        ("verify", str(a), "--from-recipe", "team.yaml"),  # both
        ("verify", "--from-recipe", "team.yaml", "--sig", "x.sig"),
        ("sign", "--from-recipe", "team.yaml", "--out", "x.sig"),
        ("sign", str(a), "--env-file", "vars.env"),
    ):
        usage = run_cli(*args, cwd=tmp_path, env=env)
        assert usage.code == 2 and "Traceback" not in usage.output, (args, usage.output)
    no_vmig = tmp_path / "no-vmig.yaml"
    no_vmig.write_text("version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: sqlite, path: m.db}\n")
    none = run_cli("sign", "--from-recipe", str(no_vmig), env=env)
    assert none.code == 2 and "has no .vmig.jsonl target" in none.err
