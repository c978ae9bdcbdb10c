"""The YAML configuration: every rule, with the exact file:line a user is pointed to."""

from __future__ import annotations

from pathlib import Path

import pytest

from callbuddy_pbx.config import (
    DEFAULT_INBOUND_CONTEXTS,
    ConfigError,
    default_config,
    load_config,
)
from tests.config_files import problems_of

EXAMPLE = """\
default_region: US
asterisk:
  host: 127.0.0.1
  port: 5038
  username: callbuddy
  secret: ${AMI_SECRET}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000", "15550001003"]
    timezone: America/New_York
    default_region: US
inbound:
  contexts: [from-trunk, from-pstn]
  trunk_endpoints: [PJSIP/trunk]
  internal_contexts: [desks, from-internal]
storage:
  path: data/callbuddy.sqlite3
logging:
  level: INFO
  format: text
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AMI_SECRET", "CALLBUDDY_AMI_SECRET", "CB_TEST_VAR", "CB_TEST_PORT"):
        monkeypatch.delenv(name, raising=False)


# -- the example file --------------------------------------------------------------------------------------------


def test_example_loads_and_normalises(write, monkeypatch, tmp_path):
    monkeypatch.setenv("AMI_SECRET", "s3cret-value")
    monkeypatch.chdir(tmp_path.parent)  # relative paths must not depend on the working directory
    path = write(EXAMPLE)
    config = load_config(path)

    assert config.asterisk.host == "127.0.0.1"
    assert config.asterisk.port == 5038
    assert config.asterisk.username == "callbuddy"
    assert config.asterisk.secret == "s3cret-value"
    [business] = config.businesses
    assert business.name == "Glow Salon"
    assert business.numbers == ("+15550001000", "+15550001003")
    assert business.timezone == "America/New_York"
    assert business.default_region == "US"
    assert config.inbound.contexts == ("from-trunk", "from-pstn")
    assert config.inbound.trunk_endpoints == ("PJSIP/trunk",)
    assert config.inbound.internal_contexts == ("desks", "from-internal")
    assert config.storage.path == tmp_path / "data" / "callbuddy.sqlite3"
    assert config.logging.level == "INFO"
    assert config.logging.format == "text"
    assert config.source == str(path)


def test_secret_is_not_in_repr_or_str(write, monkeypatch):
    monkeypatch.setenv("AMI_SECRET", "s3cret-value")
    config = load_config(write(EXAMPLE))
    assert "s3cret-value" not in repr(config)
    assert "s3cret-value" not in str(config)
    assert "s3cret-value" not in repr(config.asterisk)


def test_secret_is_not_in_problems(write, monkeypatch):
    monkeypatch.setenv("AMI_SECRET", "s3cret-value")
    path = write(EXAMPLE.replace("port: 5038", "port: nope"))
    problems = problems_of(path)
    assert problems == [
        f"{path}:4: asterisk.port: 'nope' is not a whole number (expected a whole number from 1 to 65535)"
    ]
    assert all("s3cret-value" not in problem for problem in problems)


def test_minimal_file_gets_defaults(write, tmp_path):
    config = load_config(write("businesses: []\n"))
    assert config.businesses == ()
    assert config.inbound.contexts == DEFAULT_INBOUND_CONTEXTS
    assert config.inbound.trunk_endpoints == ()
    assert config.asterisk.port == 5038
    assert config.asterisk.secret == ""
    assert config.default_region == "US"
    assert config.storage.path == tmp_path / "data" / "callbuddy.sqlite3"
    assert (config.logging.level, config.logging.format) == ("INFO", "text")


def test_empty_sections_mean_defaults(write):
    config = load_config(write("asterisk:\nlogging:\ninbound:\n"))
    assert config.asterisk.host == "127.0.0.1"
    assert config.inbound.contexts == DEFAULT_INBOUND_CONTEXTS


def test_default_config_for_the_demo(tmp_path):
    config = default_config(tmp_path / "demo")
    assert config.businesses == ()
    assert config.storage.path == tmp_path / "demo" / "callbuddy.sqlite3"


# -- file level ----------------------------------------------------------------------------------------------------


def test_missing_file_is_one_clear_problem(tmp_path):
    path = tmp_path / "nope.yaml"
    assert problems_of(path) == [f"{path}: no such file"]


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file(write, text):
    path = write(text)
    assert problems_of(path) == [
        f"{path}:1: the file is empty (expected settings such as asterisk, businesses)",
    ]


def test_top_level_list_is_rejected(write):
    path = write("- a\n- b\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: expected a mapping of settings (default_region, asterisk,")
    assert problem.endswith("got a list")


def test_yaml_syntax_error_names_file_and_line(write):
    path = write("asterisk:\n  host: x\n  port: [1, 2\nlogging: {}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4: YAML syntax error:")


def test_two_documents_are_a_syntax_error(write):
    path = write("asterisk: {}\n---\nlogging: {}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2: YAML syntax error:")
    assert "single document" in problem


def test_forbidden_control_character_names_line(write):
    path = write('asterisk:\n  host: "a\x07b"\n')
    assert problems_of(path) == [f"{path}:2: YAML syntax error: character U+0007 is not allowed"]


def test_every_problem_is_reported_in_file_order(write):
    path = write(
        """\
        logging:
          level: LOUD
        asterisk:
          port: 0
          hots: x
        businesses:
          - name: A
            numbers: ["12"]
        """
    )
    problems = problems_of(path)
    assert [problem.split(":")[1] for problem in problems] == ["2", "4", "5", "8"]
    assert len(problems) == 4


# -- keys ------------------------------------------------------------------------------------------------------------


def test_unknown_key_suggests_the_close_one(write):
    path = write("asterisk:\n  hots: 10.0.0.1\n")
    assert problems_of(path) == [f"{path}:2: asterisk.hots: unknown key (did you mean 'host'?)"]


def test_unknown_key_without_close_match_lists_known_keys(write):
    path = write("asterisk: {}\nzebra: 1\n")
    assert problems_of(path) == [
        f"{path}:2: zebra: unknown key (expected one of: default_region, asterisk, businesses, inbound, storage, "
        "logging, gateways, web, pbx, alerts, ari, outbox, cel, push, smtp)"
    ]


def test_outbox_settings(write):
    config = load_config(write("outbox:\n  max_age_hours: 6\n  resend_unknown_after_minutes: 30\n"))
    assert (config.outbox.max_age_s, config.outbox.resend_unknown_after_s) == (6 * 3600, 30 * 60)
    default = load_config(write("outbox:\n  resend_unknown_after_minutes: null\n")).outbox
    assert (default.max_age_s, default.resend_unknown_after_s) == (24 * 3600, None)  # never re-sent blindly
    (problem,) = problems_of(write("outbox:\n  max_age_hours: 0\n"))
    assert ":2: outbox.max_age_hours: " in problem


def test_unknown_business_key(write):
    path = write("businesses:\n  - name: A\n    number: ['+15550001000']\n")
    problems = problems_of(path)
    assert f"{path}:3: businesses[0].number: unknown key (did you mean 'numbers'?)" in problems
    assert f"{path}:2: businesses[0]: missing required key 'numbers' (a list of the business's phone numbers)" in (
        problems
    )


def test_repeated_key_is_an_error(write):
    path = write("logging:\n  level: INFO\n  level: DEBUG\n")
    assert problems_of(path) == [f"{path}:3: logging.level: given twice (first on line 2)"]


def test_section_of_wrong_type(write):
    path = write("asterisk: [1, 2]\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: asterisk: expected a mapping of settings (host, port,")


# -- asterisk --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "0 is out of range (expected a whole number from 1 to 65535)"),
        ("65536", "65536 is out of range (expected a whole number from 1 to 65535)"),
        ("abc", "'abc' is not a whole number (expected a whole number from 1 to 65535)"),
        ("true", "expected a whole number from 1 to 65535, got true/false"),
        ("5038.5", "expected a whole number from 1 to 65535, got a number"),
        ("[5038]", "expected a whole number from 1 to 65535, got a list"),
    ],
)
def test_port_must_be_a_port_number(write, value, message):
    path = write(f"asterisk:\n  host: pbx\n  port: {value}\n")
    assert problems_of(path) == [f"{path}:3: asterisk.port: {message}"]


@pytest.mark.parametrize(("value", "expected"), [("5039", 5039), ('"5040"', 5040), ("65535", 65535)])
def test_port_accepts_numbers_and_numeric_strings(write, value, expected):
    assert load_config(write(f"asterisk:\n  port: {value}\n")).asterisk.port == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "0 is not allowed (expected a positive number of seconds)"),
        ("-1.5", "-1.5 is not allowed (expected a positive number of seconds)"),
        (".nan", "nan is not allowed (expected a positive number of seconds)"),
        ("soon", "'soon' is not a number (expected a positive number of seconds)"),
        ("", "expected a positive number of seconds, got nothing"),
    ],
)
def test_timeouts_must_be_positive_numbers(write, value, message):
    path = write(f"asterisk:\n  connect_timeout_s: {value}\n")
    assert problems_of(path) == [f"{path}:2: asterisk.connect_timeout_s: {message}"]


def test_timing_fields_are_read(write):
    path = write(
        """\
        asterisk:
          connect_timeout_s: 2
          action_timeout_s: 7.5
          ping_interval_s: 15
          ping_timeout_s: 3
          reconnect_min_s: 1
          reconnect_max_s: 60
        """
    )
    ami = load_config(path).asterisk
    assert (ami.connect_timeout_s, ami.action_timeout_s, ami.ping_interval_s) == (2.0, 7.5, 15.0)
    assert (ami.ping_timeout_s, ami.reconnect_min_s, ami.reconnect_max_s) == (3.0, 1.0, 60.0)


def test_reconnect_min_above_max_is_an_error(write):
    path = write("asterisk:\n  reconnect_min_s: 40\n")
    assert problems_of(path) == [f"{path}:2: asterisk.reconnect_min_s: 40 is more than reconnect_max_s (30)"]


def test_empty_host_is_an_error(write):
    path = write('asterisk:\n  host: "  "\n')
    assert problems_of(path) == [f"{path}:2: asterisk.host: expected a host name or address, got an empty string"]


def test_secret_falls_back_to_environment_when_key_absent(write, monkeypatch):
    monkeypatch.setenv("CALLBUDDY_AMI_SECRET", "from-env")
    assert load_config(write("asterisk:\n  host: pbx\n")).asterisk.secret == "from-env"
    assert load_config(write("businesses: []\n")).asterisk.secret == "from-env"


def test_secret_key_wins_over_fallback(write, monkeypatch):
    monkeypatch.setenv("CALLBUDDY_AMI_SECRET", "from-env")
    assert load_config(write("asterisk:\n  secret: in-file\n")).asterisk.secret == "in-file"


def test_secret_keeps_its_exact_text(write):
    # Unquoted, YAML would read 0123 as the octal number 83; a password is text.
    assert load_config(write("asterisk:\n  secret: 0123\n")).asterisk.secret == "0123"


# -- environment expansion -------------------------------------------------------------------------------------


def test_env_variable_is_expanded_in_any_string(write, monkeypatch):
    monkeypatch.setenv("CB_TEST_VAR", "pbx.example.net")
    monkeypatch.setenv("CB_TEST_PORT", "6038")
    path = write(
        'asterisk:\n  host: ${CB_TEST_VAR}\n  port: "${CB_TEST_PORT}"\nstorage:\n  path: /x/${CB_TEST_VAR}.db\n'
    )
    config = load_config(path)
    assert config.asterisk.host == "pbx.example.net"
    assert config.asterisk.port == 6038
    assert config.storage.path == Path("/x/pbx.example.net.db")


def test_env_default_is_used_when_unset_or_empty(write, monkeypatch):
    path = write("asterisk:\n  host: ${CB_TEST_VAR:-fallback.local}\n")
    assert load_config(path).asterisk.host == "fallback.local"
    monkeypatch.setenv("CB_TEST_VAR", "")
    assert load_config(path).asterisk.host == "fallback.local"
    monkeypatch.setenv("CB_TEST_VAR", "set.local")
    assert load_config(path).asterisk.host == "set.local"


def test_missing_env_variable_names_variable_and_line(write):
    path = write(EXAMPLE)
    assert problems_of(path) == [
        f"{path}:6: asterisk.secret: environment variable AMI_SECRET is not set (or write ${{AMI_SECRET:-default}})"
    ]


def test_env_value_never_appears_in_messages(write, monkeypatch):
    monkeypatch.setenv("CB_TEST_VAR", "hunter2-topsecret")
    path = write("asterisk:\n  secret: ${CB_TEST_VAR}-${CB_TEST_MISSING}\n")
    [problem] = problems_of(path)
    assert "CB_TEST_MISSING" in problem
    assert "hunter2" not in problem


def test_double_dollar_is_a_literal(write, monkeypatch):
    monkeypatch.setenv("CB_TEST_VAR", "expanded")
    assert load_config(write("asterisk:\n  secret: pa$${CB_TEST_VAR}ss\n")).asterisk.secret == "pa${CB_TEST_VAR}ss"


def test_malformed_reference_is_an_error(write):
    path = write("asterisk:\n  host: ${not a name}\n  username: ${UNCLOSED\n")
    assert problems_of(path) == [
        f"{path}:2: asterisk.host: malformed '${{not a name}}' (expected ${{NAME}} or ${{NAME:-default}})",
        f"{path}:3: asterisk.username: malformed '${{UNCLOSED' (expected ${{NAME}} or ${{NAME:-default}})",
    ]


# -- businesses ------------------------------------------------------------------------------------------------------


def test_bad_number_message_is_exact(write):
    path = write(
        """\
        default_region: US
        asterisk:
          host: 127.0.0.1
        businesses:
          - name: Glow Salon
            numbers:
              - "+15550001000"
              - "555-01"
        """
    )
    assert problems_of(path) == [
        f"{path}:8: businesses[0].numbers[1]: '555-01' is not a phone number "
        "(expected e.g. +15550001000 or a number valid in region US)"
    ]


def test_unquoted_plus_number_keeps_its_plus(write):
    config = load_config(write("businesses:\n  - name: A\n    numbers: [+442079460018]\n"))
    assert config.businesses[0].numbers == ("+442079460018",)


def test_numbers_use_the_business_region(write):
    path = write(
        """\
        default_region: US
        businesses:
          - name: London
            default_region: gb
            numbers: ["020 7946 0018"]
          - name: Boston
            numbers: ["(617) 555-0134"]
        """
    )
    london, boston = load_config(path).businesses
    assert london.default_region == "GB"
    assert london.numbers == ("+442079460018",)
    assert boston.default_region == "US"
    assert boston.numbers == ("+16175550134",)


def test_business_region_defaults_to_top_level(write):
    config = load_config(write("default_region: DE\nbusinesses:\n  - name: Berlin\n    numbers: ['030 901820']\n"))
    assert config.default_region == "DE"
    assert config.businesses[0].default_region == "DE"
    assert config.businesses[0].numbers == ("+4930901820",)


@pytest.mark.parametrize("region", ["XX", "USA", "1"])
def test_unknown_region(write, region):
    path = write(f"default_region: {region}\n")
    assert problems_of(path) == [
        f"{path}:1: default_region: '{region}' is not a region known to phonenumbers (expected e.g. US, GB, DE)"
    ]


def test_duplicate_number_across_businesses(write):
    path = write(
        """\
        businesses:
          - name: Glow Salon
            numbers: ["+15550001000"]
          - name: Glow Spa
            numbers: ["1 555 000 1000"]
        """
    )
    assert problems_of(path) == [
        f"{path}:5: businesses[1].numbers[0]: +15550001000 is already a number of business 'Glow Salon' (line 3)"
    ]


def test_duplicate_number_within_a_business(write):
    path = write("businesses:\n  - name: A\n    numbers: ['+15550001000', '(555) 000-1000']\n")
    assert problems_of(path) == [f"{path}:3: businesses[0].numbers[1]: +15550001000 is listed twice (first on line 3)"]


def test_business_name_required_non_empty_and_unique(write):
    path = write(
        """\
        businesses:
          - numbers: ["+15550001000"]
          - name: ""
            numbers: ["+15550001001"]
          - name: Glow Salon
            numbers: ["+15550001002"]
          - name: glow salon
            numbers: ["+15550001003"]
        """
    )
    assert problems_of(path) == [
        f"{path}:2: businesses[0]: missing required key 'name'",
        f"{path}:3: businesses[1].name: expected a business name, got an empty string",
        f"{path}:7: businesses[3].name: 'glow salon' is already used (line 5)",
    ]


def test_numbers_must_be_a_non_empty_list(write):
    path = write("businesses:\n  - name: A\n    numbers: '+15550001000'\n  - name: B\n    numbers: []\n")
    assert problems_of(path) == [
        f"{path}:3: businesses[0].numbers: expected a list, got a string",
        f"{path}:5: businesses[1].numbers: expected at least one phone number",
    ]


def test_business_entry_must_be_a_mapping(write):
    path = write("businesses:\n  - Glow Salon\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2: businesses[0]: expected a mapping of settings (name, numbers,")


def test_timezone_default_and_validation(write):
    config = load_config(write("businesses:\n  - name: A\n    numbers: ['+15550001000']\n"))
    assert config.businesses[0].timezone == "UTC"
    path = write("businesses:\n  - name: A\n    numbers: ['+15550001000']\n    timezone: America/New_Yrok\n")
    assert problems_of(path) == [
        f"{path}:4: businesses[0].timezone: 'America/New_Yrok' is not a known time zone "
        "(did you mean 'America/New_York'?)"
    ]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "/etc/passwd"])
def test_timezone_rejects_non_zones(write, zone):
    path = write(f"businesses:\n  - name: A\n    numbers: ['+15550001000']\n    timezone: '{zone}'\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4: businesses[0].timezone: '{zone}' is not a known time zone")


# -- inbound, storage, logging ---------------------------------------------------------------------------------


def test_inbound_contexts_validation(write):
    path = write("inbound:\n  contexts: []\n")
    assert problems_of(path) == [f"{path}:2: inbound.contexts: expected at least one dialplan context"]
    path = write("inbound:\n  contexts: from-trunk\n")
    assert problems_of(path) == [f"{path}:2: inbound.contexts: expected a list, got a string"]
    path = write("inbound:\n  contexts: [from-trunk, 'from pstn']\n")
    assert problems_of(path) == [
        f"{path}:2: inbound.contexts[1]: 'from pstn' contains spaces (expected a dialplan context name)"
    ]


def test_trunk_endpoints_must_look_like_endpoints(write):
    path = write("inbound:\n  trunk_endpoints:\n    - PJSIP/trunk\n    - trunk\n")
    assert problems_of(path) == [
        f"{path}:4: inbound.trunk_endpoints[1]: 'trunk' is not valid (expected an endpoint such as PJSIP/trunk)"
    ]


def test_storage_path_relative_to_config_absolute_kept(write, tmp_path):
    assert load_config(write("storage:\n  path: db/calls.sqlite3\n")).storage.path == tmp_path / "db" / "calls.sqlite3"
    absolute = tmp_path / "elsewhere" / "x.sqlite3"
    assert load_config(write(f"storage:\n  path: {absolute}\n")).storage.path == absolute


def test_logging_level_and_format(write):
    config = load_config(write("logging:\n  level: debug\n  format: JSON\n"))
    assert (config.logging.level, config.logging.format) == ("DEBUG", "json")
    path = write("logging:\n  level: WARN\n  format: xml\n")
    assert problems_of(path) == [
        f"{path}:2: logging.level: 'WARN' is not allowed (did you mean 'WARNING'?)",
        f"{path}:3: logging.format: 'xml' is not allowed (expected one of: text, json)",
    ]


def test_config_error_message_holds_all_problems(write):
    path = write("asterisk:\n  port: 0\nlogging:\n  format: xml\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.problems)
    assert len(info.value.problems) == 2
