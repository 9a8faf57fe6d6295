"""The aiopushy command line: run (table, JSON, failures, host files)."""

from __future__ import annotations

import importlib.metadata
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import aiopushy
from aiopushy._runcmd import read_hosts

from .procutil import REMOTE_IGNORED_MASKS, check_terminal_dispositions


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiopushy", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_table_and_exit_status(tmp_path: Path) -> None:
    result = _run("local:", "local:", "-e", "6 * 7")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.split() == ["local:", "ok", "42"] for line in lines)
    failed_file = tmp_path / "failed"
    result = _run(
        "local:", "nosuch:x", "local:", "-e", "1 // (__import__('os').getpid() % 1)",
        "--failed-file", str(failed_file),
    )  # fmt: skip
    assert result.returncode == 1
    rows = result.stdout.splitlines()
    assert rows[1].startswith("nosuch:x  FAILED  ValueError: unknown transport 'nosuch'")
    assert rows[0].startswith("local:    FAILED  ZeroDivisionError") and rows[2] == rows[0]
    # Each failure once, in the table; the summary only counts them.
    assert result.stderr == "3 of 3 targets failed\n"
    assert failed_file.read_text() == "local:\nnosuch:x\nlocal:\n"


def test_json_values(tmp_path: Path) -> None:
    expression = "(6 * 7, {'a': (1, 2.5, None, True, 'x')}, {1, 2}, float('nan'), {1: 2}, b'x')"
    result = _run("local:", "--json", "-e", expression)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["value"] == repr(eval(expression))
    assert record["repr"] is True  # the set, NaN, int keys and bytes have no JSON form
    for expression, value in [
        ("6 * 7", 42),
        ("{'a': [1, (2, 'b')], 'c': None}", {"a": [1, [2, "b"]], "c": None}),
        ("'text'", "text"),
        ("None", None),
    ]:
        record = json.loads(_run("local:", "--json", "-e", expression).stdout)
        assert (record["value"], record["repr"]) == (value, False), expression
    for expression in ["{1, 2}", "float('inf')", "{1: 2}", "b'x'", "object()"]:
        record = json.loads(_run("local:", "--json", "-e", expression).stdout)
        assert record["repr"] is True and isinstance(record["value"], str), expression
    nested = json.loads(_run("local:", "--json", "-e", "[[[[1]]]]").stdout)
    assert nested["value"] == [[[[1]]]] and nested["repr"] is False
    failed = json.loads(_run("nosuch:x", "--json", "-e", "1").stdout)
    assert failed["ok"] is False and failed["value"] is None and "nosuch" in failed["error"]


def test_json_code_and_script(tmp_path: Path) -> None:
    result = _run("local:", "--json", "-c", "print('from remote')")
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["ok"] is True and record["value"] is None
    assert "local: from remote" in result.stdout.splitlines()
    script = tmp_path / "job.py"
    script.write_text("import os\nprint(os.getpid() > 0)\n")
    result = _run("local:", "-f", str(script))
    assert result.returncode == 0 and "local: True" in result.stdout.splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "/nonexistent.py"], "cannot read /nonexistent.py: No such file or directory"),
        (["-f", "{tmp}"], "cannot read {tmp}: Is a directory"),
        (["-f", "{tmp}/latin1.py"], "cannot read {tmp}/latin1.py: not UTF-8 text"),
        (["--limit", "0", "-e", "1"], "argument --limit: must be at least 1, not 0"),
        (["--limit", "many", "-e", "1"], "argument --limit: expected a whole number"),
        (["--timeout", "0", "-e", "1"], "argument --timeout: must be a positive number"),
        (["--timeout", "-1", "-e", "1"], "argument --timeout: must be a positive number"),
        (["--timeout", "nan", "-e", "1"], "argument --timeout: must be a positive number"),
        (["-e", "x = 1"], "-e takes an expression, and 'x = 1' is a statement: use -c"),
        (["-e", "import os"], "-e takes an expression, and 'import os' is a statement"),
        ([], "one of the arguments -e/--eval -c/--code -f/--file is required"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "latin1.py").write_bytes(b"print('\xe9')\n")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = _run("local:", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"aiopushy run: {message.replace('{tmp}', str(tmp_path))}")
    assert result.stderr.count("\n") == 1, result.stderr  # no usage text, no traceback


def test_a_syntax_error_in_an_expression_is_the_remotes_to_judge() -> None:
    # The remote's Python may be newer than ours: only a sure statement is refused here.
    result = _run("local:", "-e", "1 +")
    assert result.returncode == 1 and "local:  FAILED  SyntaxError" in result.stdout


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiopushy", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout == f"aiopushy {aiopushy.__version__}\n"
    assert aiopushy.__version__ == importlib.metadata.version("aiopushy")


def test_remote_code_behaves_as_from_a_terminal_under_nohup_in_the_background() -> None:
    """``nohup aiopushy run ... &`` from a script: SIGHUP and SIGINT ignored by the
    command, not by the remote nor by what the remote starts."""
    command = shlex.join(
        [sys.executable, "-m", "aiopushy", "run", "--json", "local:", "-e", REMOTE_IGNORED_MASKS]
    )
    result = subprocess.run(
        ["sh", "-c", f"nohup {command} & wait $!"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    check_terminal_dispositions(record["value"])


def test_remote_exception_is_a_failure() -> None:
    result = _run("local:", "-e", "1 / 0")
    assert result.returncode == 1 and "ZeroDivisionError" in result.stdout


def test_hosts_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "# fleet\nweb1 python=/usr/bin/python3 port=2200 use_native=yes\n"
        "deploy@web2:2222\nlocal:\n\nssh:db1  # primary\n"
    )
    assert read_hosts(str(hosts)) == [
        ("ssh:web1", {"python": "/usr/bin/python3", "port": 2200, "use_native": True}),
        ("ssh:deploy@web2:2222", {}),
        ("local:", {}),
        ("ssh:db1", {}),
    ]
    local = tmp_path / "local-hosts"
    local.write_text(f"local: python={sys.executable}\nlocal:\n")
    result = _run("--hosts", str(local), "-e", "2")
    assert result.returncode == 0 and result.stdout.count("ok") == 2
    bad = tmp_path / "bad-hosts"
    bad.write_text("web1 python\n")
    result = _run("--hosts", str(bad), "-e", "1")
    assert result.returncode == 2 and "key=value" in result.stderr
    result = _run("--hosts", str(hosts.with_name("none")), "-e", "1")
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_no_targets() -> None:
    result = _run("-e", "1")
    assert result.returncode == 2 and "no targets" in result.stderr


def test_grouped_output_and_out_dir(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    result = _run("local:", "local:", "--output", "group", "-c", code)
    assert result.returncode == 0
    assert result.stdout.count("----- local:") == 2 and "local: out" not in result.stdout
    out_dir = tmp_path / "outputs"
    result = _run("local:", "local:", "--out-dir", str(out_dir), "-c", code)
    assert result.returncode == 0
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == [
        "0000-local_.stderr",
        "0000-local_.stdout",
        "0001-local_.stderr",
        "0001-local_.stdout",
    ]
    assert (out_dir / "0001-local_.stdout").read_text() == "out\n"
    assert (out_dir / "0001-local_.stderr").read_text() == "err\n"


def test_progress_bar_counts() -> None:
    import io

    from rich.console import Console

    from aiopushy._runcmd import ProgressBar

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80)
    with ProgressBar(3, console=console) as bar:
        bar.update(1, 1, 1, 3)
        bar._progress.refresh()
        assert "ok 1  failed 1  running 1" in buffer.getvalue()
        bar.update(2, 1, 0, 3)
        bar._progress.refresh()
    text = buffer.getvalue()
    assert "ok 2  failed 1  running 0" in text and "3/3" in text


def test_inventory_errors(tmp_path: Path) -> None:
    result = _run("--inventory", str(tmp_path / "none.ini"), "-e", "1")
    assert result.returncode == 2 and "cannot read" in result.stderr
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[web]\nweb1\n")
    result = _run("--inventory", str(inventory), "--group", "db", "-e", "1")
    assert result.returncode == 2 and "no group 'db'" in result.stderr


def test_yaml_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("web:\n  hosts: [web1]\n")
    result = _run("--inventory", str(inventory), "--group", "web", "-e", "1")
    assert result.returncode == 2
    assert f"{inventory}: group 'web' hosts: expected a mapping" in result.stderr
    inventory.write_text("web: {hosts: [unclosed\n")
    result = _run("--inventory", str(inventory), "-e", "1")
    assert result.returncode == 2 and f"{inventory}: invalid YAML" in result.stderr
    # Nothing listens on port 1: the run fails, but on the target and port the file gave.
    inventory.write_text(
        "web:\n  hosts:\n    web1: {ansible_host: 127.0.0.1, ansible_port: 1}\n"
        "  vars: {ansible_user: nobody}\n"
    )
    result = _run("--inventory", str(inventory), "--group", "web", "-e", "1")
    assert result.returncode == 1
    assert "ssh:nobody@127.0.0.1  FAILED" in result.stdout and "]:1:" in result.stdout
