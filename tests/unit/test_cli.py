"""The `registry` command line as a newcomer meets it: help per sub-command, required options marked
required, a version, and every existing invocation still reaching its command."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import __version__, cli


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(argv)
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_token_issue_help_is_its_own_and_marks_role_and_subject_required(capsys) -> None:
    code, out, _ = run(["token", "issue", "--help"], capsys)
    usage = " ".join(out.split("\n\n")[0].split())
    assert code == 0 and usage.startswith("usage: registry token issue")
    assert " --role {operator,enterprise,investor,regulator} --subject SUBJECT" in usage  # not in [brackets]
    assert "[--hours HOURS]" in usage
    assert "operator 运营机构" in out and "regulator 监管机构" in out and "investor 投资者" in out


def test_a_token_without_its_subject_is_refused_naming_what_is_missing(capsys) -> None:
    code, _, err = run(["token", "issue", "--role", "operator"], capsys)
    assert code == 2 and "the following arguments are required: --subject" in err
    code, _, err = run(["token"], capsys)
    assert code == 2 and "issue" in err and "public-key" in err


def test_the_version_is_printed(capsys) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"registry {__version__}" and __version__ != "unknown"


@pytest.mark.parametrize("argv, command", [
    (["serve", "--port", "8123", "--demo", "--data-dir", "d"], "cmd_serve"),
    (["migrate", "--data-dir", "d"], "cmd_migrate"),
    (["demo", "--data-dir", "d"], "cmd_demo"),
    (["verify", "--quiet", "--data-dir", "d"], "cmd_verify"),
    (["verify", "--export", "log.jsonl", "--checkpoint", "c.txt", "--key", "k.txt", "--data-dir", "d"], "cmd_verify"),
    (["export", "log", "--out", "log.jsonl", "-q", "--data-dir", "d"], "cmd_export"),
    (["token", "issue", "--role", "operator", "--subject", "op-1", "--data-dir", "d"], "cmd_token_issue"),
    (["token", "public-key", "--data-dir", "d"], "cmd_token_public_key"),
    (["rebuild", "--apply", "--data-dir", "d"], "cmd_rebuild"),
    (["checkpoint", "sign", "--out", "c.txt", "--data-dir", "d"], "cmd_checkpoint_sign"),
    (["checkpoint", "public-key", "--data-dir", "d"], "cmd_checkpoint_public_key"),
    (["valuation", "recompute", "V00000042", "--data-dir", "d"], "cmd_valuation"),
    (["bench", "eventlog", "--seconds", "1", "--writers", "1,4"], "cmd_bench_eventlog"),
    (["bench", "transfers", "--events", "1000", "--clients", "8"], "cmd_bench_transfers"),
    (["bench", "audit", "--events", "1000"], "cmd_bench_audit"),
    (["bench", "valuation", "--seconds", "1"], "cmd_bench_valuation"),
    (["settings"], "cmd_settings"),
])
def test_every_command_the_readme_and_the_tests_use_reaches_its_function(argv: list[str], command: str) -> None:
    args = cli.build_parser().parse_args(argv)
    assert args.func is getattr(cli, command)
    if "--data-dir" in argv:
        assert args.data_dir == Path("d")


def test_every_command_and_sub_command_explains_itself(capsys) -> None:
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them only here
    for name, command in commands.items():
        assert command.description, name
        for sub in (command._subparsers._group_actions[0].choices if command._subparsers else {}).values():  # noqa: SLF001
            assert sub.description and "--data-dir" in sub.format_help(), sub.prog
