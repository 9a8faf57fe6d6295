"""Ansible INI and YAML inventories as target lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiopushy._inventory import read_ansible_ini, read_ansible_yaml, read_inventory

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


def test_ini_ranges_and_child_vars_win(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(
        "[web]\nweb[08:10] ansible_port=2222\n"
        "[web:vars]\nansible_user=webops\n"
        "[all:vars]\nansible_user=deploy\n"
        "[prod:children]\nweb\n"
        "[prod:vars]\nansible_user=produser\n"
    )
    assert read_ansible_ini(str(path), "prod") == [
        ("ssh:webops@web08", {"port": 2222}),
        ("ssh:webops@web09", {"port": 2222}),
        ("ssh:webops@web10", {"port": 2222}),
    ]


YAML_INVENTORY = """\
all:
  vars: {ansible_user: deploy}
  hosts:
    mail.example.com:
  children:
    web:
      hosts:
        web1: {ansible_host: 10.0.0.1, ansible_port: 2222}
        web2:
      vars: {ansible_python_interpreter: /usr/bin/python3}
    db:
      hosts:
        db1:
    prod:
      children:
        web:
        db:
"""


def _write(tmp_path: Path, text: str, name: str = "inventory.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_yaml_all_hosts(tmp_path: Path) -> None:
    path = _write(tmp_path, YAML_INVENTORY)
    python3 = {"python": "/usr/bin/python3"}
    assert read_ansible_yaml(path) == [
        ("ssh:deploy@mail.example.com", {}),
        ("ssh:deploy@10.0.0.1", {"port": 2222, **python3}),
        ("ssh:deploy@web2", python3),
        ("ssh:deploy@db1", {}),
    ]


def test_yaml_groups_and_children(tmp_path: Path) -> None:
    path = _write(tmp_path, YAML_INVENTORY)
    assert [t for t, _ in read_ansible_yaml(path, "web")] == [
        "ssh:deploy@10.0.0.1",
        "ssh:deploy@web2",
    ]
    assert [t for t, _ in read_ansible_yaml(path, "prod")] == [
        "ssh:deploy@10.0.0.1",
        "ssh:deploy@web2",
        "ssh:deploy@db1",
    ]
    with pytest.raises(ValueError, match=r"inventory\.yml: no group 'nosuch'"):
        read_ansible_yaml(path, "nosuch")


def test_yaml_precedence(tmp_path: Path) -> None:
    # The child groups come first in the file and sort before their parent by name, so
    # only their depth makes them win; at the same depth, the later name wins.
    path = _write(
        tmp_path,
        """\
a_web:
  hosts:
    web1: {ansible_port: 2201}
    web2:
    web3:
  vars: {ansible_port: 2202, ansible_python_interpreter: /web/python}
b_web2_only:
  hosts:
    web2:
  vars: {ansible_port: 2203}
z_prod:
  children:
    a_web:
    b_web2_only:
  vars: {ansible_port: 2204, ansible_python_interpreter: /prod/python, ansible_user: prod}
all:
  vars: {ansible_port: 2205, ansible_user: everyone, ansible_become: true}
""",
    )
    assert read_ansible_yaml(path) == [
        ("ssh:prod@web1", {"port": 2201, "python": "/web/python", "sudo": True}),
        ("ssh:prod@web2", {"port": 2203, "python": "/web/python", "sudo": True}),
        ("ssh:prod@web3", {"port": 2202, "python": "/web/python", "sudo": True}),
    ]


def test_yaml_top_level_groups_make_all(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
web:
  hosts:
    web1:
    web2: {ansible_user: alice}
db:
  hosts:
    db[09:10]:
    web1:
""",
    )
    assert read_ansible_yaml(path) == [
        ("ssh:web1", {}),
        ("ssh:alice@web2", {}),
        ("ssh:db09", {}),
        ("ssh:db10", {}),
    ]
    assert [t for t, _ in read_ansible_yaml(path, "db")] == ["ssh:db09", "ssh:db10", "ssh:web1"]


def test_yaml_group_defined_twice_merges(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
web:
  hosts:
    web1:
  vars: {ansible_user: deploy}
prod:
  children:
    web:
      hosts:
        web2: {ansible_port: 2222}
      vars: {ansible_become: yes, ansible_become_user: root}
""",
    )
    options = {"sudo": "root"}
    assert read_ansible_yaml(path, "web") == [
        ("ssh:deploy@web1", options),
        ("ssh:deploy@web2", {"port": 2222, **options}),
    ]
    assert read_ansible_yaml(path, "prod") == read_ansible_yaml(path, "web")


def test_yaml_null_and_empty(tmp_path: Path) -> None:
    assert read_ansible_yaml(_write(tmp_path, "")) == []
    assert read_ansible_yaml(_write(tmp_path, "web:\n")) == []
    path = _write(tmp_path, "web:\n  hosts:\n    web1:\n  vars:\n  children:\n")
    assert read_ansible_yaml(path, "web") == [("ssh:web1", {})]


@pytest.mark.parametrize(
    "text",
    [
        "web:\n  children:\n    prod:\n      children:\n        web:\n",
        "web:\n  children:\n    db:\ndb:\n  children:\n    web:\n",
        "web:\n  children:\n    all:\n",
        "web: &web\n  children:\n    web: *web\n",
    ],
)
def test_yaml_cycles(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match=r"inventory\.yml: group '(web|db|all)'"):
        read_ansible_yaml(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("- web1\n- web2\n", "the top level: expected a mapping, not list"),
        ("web:\n  - web1\n", "group 'web': expected a mapping, not list"),
        ("web:\n  hosts: [web1, web2]\n", "group 'web' hosts: expected a mapping, not list"),
        ("web:\n  hosts:\n    web1: 22\n", "host 'web1': expected a mapping, not int"),
        ("web:\n  vars: [a]\n", "group 'web' vars: expected a mapping"),
        ("web:\n  children: db\n", "group 'web' children: expected a mapping, not str"),
        ("web:\n  host:\n    web1:\n", "group 'web': unknown key 'host'"),
        ("web:\n  hosts:\n    web1: {ansible_port: ssh}\n", "host 'web1': invalid literal"),
        ("web:\n  hosts:\n    web[3:1]:\n", "group 'web': empty range in host 'web\\[3:1\\]'"),
        ("web: [unclosed\n", "invalid YAML"),
    ],
)
def test_yaml_malformed(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ValueError, match=rf"inventory\.yml: {where}"):
        read_ansible_yaml(_write(tmp_path, text))


def test_suffix_picks_the_format(tmp_path: Path) -> None:
    yaml_text = "web:\n  hosts:\n    web1:\n"
    for name in ("inventory.yml", "inventory.YAML"):
        assert read_inventory(_write(tmp_path, yaml_text, name)) == [("ssh:web1", {})]
    ini = _write(tmp_path, "[web]\nweb1 ansible_port=2222\n", "hosts")
    assert read_inventory(ini, "web") == [("ssh:web1", {"port": 2222})]
    as_ini = read_inventory(_write(tmp_path, yaml_text, "inventory.ini"))
    assert [t for t, _ in as_ini] == ["ssh:web:", "ssh:hosts:", "ssh:web1:"]


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
