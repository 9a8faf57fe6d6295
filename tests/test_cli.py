"""The aiopushy command line: run (table, JSON, failures, host files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aiopushy._runcmd import read_hosts


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
    result = _run("local:", "nosuch:x", "-e", "1", "--failed-file", str(failed_file))
    assert result.returncode == 1
    assert "nosuch:x  FAILED  ValueError" in result.stdout
    assert "1 of 2 targets failed" in result.stderr
    assert failed_file.read_text() == "nosuch:x\n"


def test_json_code_and_script(tmp_path: Path) -> None:
    result = _run("local:", "--json", "-c", "print('from remote')")
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["ok"] is True and record["value"] == "None"
    assert "local:: from remote" in result.stdout
    script = tmp_path / "job.py"
    script.write_text("import os\nprint(os.getpid() > 0)\n")
    result = _run("local:", "-f", str(script))
    assert result.returncode == 0 and "local:: True" in result.stdout


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
    assert result.stdout.count("----- local:") == 2 and "local:: out" not in result.stdout
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
