"""Ansible INI inventories as target lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiopushy._inventory import read_ansible_ini

INVENTORY = """\
# fleet
bastion ansible_host=10.0.0.1 ansible_user=ops

[web]
web1 ansible_port=2222
web2 ansible_host=192.0.2.7 ansible_python_interpreter=/usr/bin/python3.11

[db]
db1 ansible_become=yes ansible_become_user=postgres

[prod:children]
web
db

[prod:vars]
ansible_user=deploy ; everyone in prod logs in as deploy

[db:vars]
ansible_python_interpreter=/opt/py/bin/python3
"""


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "hosts.ini"
    path.write_text(INVENTORY)
    return str(path)


def test_all_hosts(inventory: str) -> None:
    assert read_ansible_ini(inventory) == [
        ("ssh:ops@10.0.0.1", {}),
        ("ssh:deploy@web1", {"port": 2222}),
        ("ssh:deploy@192.0.2.7", {"python": "/usr/bin/python3.11"}),
        ("ssh:deploy@db1", {"python": "/opt/py/bin/python3", "sudo": "postgres"}),
    ]


def test_groups_and_children(inventory: str) -> None:
    assert [t for t, _ in read_ansible_ini(inventory, "web")] == [
        "ssh:deploy@web1",
        "ssh:deploy@192.0.2.7",
    ]
    assert len(read_ansible_ini(inventory, "prod")) == 3
    with pytest.raises(ValueError, match="no group 'nosuch'"):
        read_ansible_ini(inventory, "nosuch")


def test_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.ini"
    path.write_text("[web]\nweb1 ansible_port\n")
    with pytest.raises(ValueError, match="key=value"):
        read_ansible_ini(str(path))


def test_ssh_config_aliases(tmp_path: Path) -> None:
    from aiopushy._inventory import read_ssh_config_hosts

    config = tmp_path / "config"
    config.write_text(
        "Host *\n  ServerAliveInterval 30\n"
        "Host web1 web2  # the web tier\n  User deploy\n"
        "Host db-? !db-9\n"
        "Host db1\n  HostName 10.0.0.5\n"
        "Match host foo\n"
    )
    assert read_ssh_config_hosts(str(config)) == ["ssh:web1", "ssh:web2", "ssh:db1"]
    assert read_ssh_config_hosts(str(config), "web*") == ["ssh:web1", "ssh:web2"]
