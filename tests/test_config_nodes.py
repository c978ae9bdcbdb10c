"""`asterisk.nodes`: several Asterisk servers in one config, each named, with its own AMI settings and CEL source;
a business's `node:` says which server its numbers ring on. Every mistake is named with its file and line."""

from __future__ import annotations

import pytest

from callbuddy_pbx.config import AsteriskNode, load_config
from callbuddy_pbx.config.asterisk import node_secret_env_var
from callbuddy_pbx.model import node_key
from tests.config_files import Write, problems_of

TWO_SITES = """\
    asterisk:
      nodes:
        - name: north
          host: 10.0.0.5
          secret: north-secret
          systemname: pbx-north
          cel: {sqlite: north.db}
        - name: south
          host: 10.0.0.6
          port: 5039
    businesses:
      - name: North Salon
        numbers: ["+15550001000"]
        node: north
      - name: Both Sites Spa
        numbers: ["+15550003000"]
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CALLBUDDY_AMI_SECRET", "CALLBUDDY_AMI_SECRET_SOUTH", "CALLBUDDY_AMI_SECRET_NORTH"):
        monkeypatch.delenv(name, raising=False)


def test_two_servers_each_with_its_settings(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBUDDY_AMI_SECRET_SOUTH", "south-secret")
    path = write(TWO_SITES)
    config = load_config(path)
    north, south = config.nodes
    assert (north.name, north.ami.host, north.ami.port, north.ami.secret) == ("north", "10.0.0.5", 5038, "north-secret")
    assert north.systemname == "pbx-north" and north.cel.sqlite == path.parent / "north.db"
    assert (south.name, south.ami.host, south.ami.port, south.ami.secret) == ("south", "10.0.0.6", 5039, "south-secret")
    assert not south.cel.enabled and south.systemname is None
    assert config.asterisk == north.ami and config.cel == north.cel  # "the" Asterisk, where one is meant
    assert config.asterisk_nodes == config.nodes and len(config.nodes) > 1
    assert [(b.name, b.node) for b in config.businesses] == [("North Salon", "north"), ("Both Sites Spa", None)]
    assert config.businesses[0].on_node("north") and not config.businesses[0].on_node("south")
    assert config.businesses[1].on_node("south")


def test_one_asterisk_is_one_unnamed_server_with_plain_keys(write: Write) -> None:
    config = load_config(write("asterisk: {host: 10.0.0.5}\ncel: {sqlite: master.db}\n"))
    (only,) = config.asterisk_nodes
    assert only == AsteriskNode("", config.asterisk, config.cel)
    assert only.shown == "Asterisk" and not config.nodes
    assert node_key("1733412345.12", only.name) == "1733412345.12"  # calls stored before keep their keys
    assert node_key("1733412345.12", "south") == "1733412345.12@south"


def test_the_shared_secret_variable_serves_every_node_without_its_own(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLBUDDY_AMI_SECRET", "shared")
    config = load_config(write(TWO_SITES))
    assert [node.ami.secret for node in config.nodes] == ["north-secret", "shared"]
    assert node_secret_env_var("site-b") == "CALLBUDDY_AMI_SECRET_SITE_B"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "asterisk:\n  host: 10.0.0.1\n  nodes:\n    - name: a\n",
            ["site.yaml:2: asterisk.host: give each node its own settings under asterisk.nodes, not beside it"],
        ),
        (
            "asterisk:\n  nodes: []\n",
            ["site.yaml:2: asterisk.nodes: expected at least one Asterisk server"],
        ),
        (
            "asterisk:\n  nodes:\n    - host: 10.0.0.1\n",
            ["site.yaml:3: asterisk.nodes[0]: missing required key 'name' (the server's short name, such as site-a)"],
        ),
        (
            "asterisk:\n  nodes:\n    - name: North Site\n",
            ["site.yaml:3: asterisk.nodes[0].name: 'North Site': use lower-case letters, digits and '-' (at most 32)"],
        ),
        (
            "asterisk:\n  nodes:\n    - {name: a, host: 10.0.0.1}\n    - {name: a, host: 10.0.0.2}\n",
            ["site.yaml:4: asterisk.nodes[1].name: 'a' is already used (line 3)"],
        ),
        (
            "asterisk:\n  nodes:\n    - {name: a, host: 10.0.0.1}\n    - {name: b, host: 10.0.0.1}\n",
            ["site.yaml:4: asterisk.nodes[1]: b reaches the same AMI (10.0.0.1:5038) as a"],
        ),
        (
            "asterisk:\n  nodes:\n    - {name: a, port: 99999}\n",
            ["site.yaml:3: asterisk.nodes[0].port: 99999 is out of range (expected a whole number from 1 to 65535)"],
        ),
        (
            "asterisk:\n  nodes:\n    - {name: a, cel: {sqlite: a.db, colour: red}}\n",
            ["site.yaml:3: asterisk.nodes[0].cel.colour: unknown key (expected one of: sqlite,"],
        ),
        (
            "asterisk:\n  nodes:\n    - {name: a}\ncel:\n  sqlite: master.db\n",
            ["site.yaml:5: cel: with asterisk.nodes, give each node its own cel: section"],
        ),
        (
            "asterisk:\n  nodes:\n    - {name: a}\nbusinesses:\n  - {name: S, numbers: ['+15550001000'], node: b}\n",
            ["site.yaml:5: businesses[0].node: 'b' is not one of asterisk.nodes (a)"],
        ),
        (
            "businesses:\n  - {name: S, numbers: ['+15550001000'], node: a}\n",
            ["site.yaml:2: businesses[0].node: there is one Asterisk (no asterisk.nodes): leave node out"],
        ),
    ],
)
def test_mistakes_are_named_with_file_and_line(write: Write, text: str, expected: list[str]) -> None:
    path = write(text)
    problems = [problem.removeprefix(f"{path.parent}/") for problem in problems_of(path)]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem


def test_cel_pgsql_without_a_database_to_read_is_named(write: Write) -> None:
    path = write("asterisk:\n  nodes:\n    - {name: a, cel: {pgsql: {table: cel_a}}}\n")
    (problem,) = problems_of(path)
    assert problem.removeprefix(f"{path.parent}/").startswith(
        "site.yaml:3: asterisk.nodes[0].cel.pgsql: the store is SQLite, so name cel_pgsql's database: give url"
    )
    url = "postgresql://callbuddy@db.lan:5432/callbuddy"
    config = load_config(
        write(f"asterisk:\n  nodes:\n    - {{name: a, cel: {{pgsql: {{table: cel_a}}}}}}\nstorage: {{url: '{url}'}}\n")
    )
    assert config.nodes[0].cel.pgsql is not None and config.nodes[0].cel.pgsql.table == "cel_a"
    single = write("cel:\n  pgsql: {table: cel_a}\n", "single.yaml")
    (problem,) = problems_of(single)
    assert problem == f"{single}:2: cel.pgsql: the store is SQLite, so name cel_pgsql's database: give url"


def test_a_server_may_have_its_own_ari(write: Write) -> None:
    text = (
        "asterisk:\n  nodes:\n    - {name: a}\n    - name: b\n      host: 10.0.0.2\n"
        "      ari: {url: 'http://10.0.0.2:8088', password: correct-horse-battery-42}\n"
    )
    config = load_config(write(text))
    a, b = config.nodes
    assert a.ari is None and b.ari is not None
    assert (b.ari.url, b.ari.password) == ("http://10.0.0.2:8088", "correct-horse-battery-42")
    bad = write(text.replace("http://10.0.0.2:8088", "http://8.8.8.8:8088"), "bad.yaml")
    (problem,) = problems_of(bad)
    assert problem.startswith(f"{bad}:6: asterisk.nodes[1].ari.url: 8.8.8.8 is a public address")
    first = "asterisk:\n  nodes:\n    - {name: a, ari: {password: correct-horse-battery-42}}\nari: {app: other}\n"
    both = write(first, "both.yaml")
    assert problems_of(both) == [f"{both}:4: ari: the first of asterisk.nodes has its own ari: give one of them"]
    own = load_config(write(first.replace("ari: {app: other}\n", ""), "own.yaml"))
    assert own.ari == own.nodes[0].ari  # "the" ARI is the first server's own
