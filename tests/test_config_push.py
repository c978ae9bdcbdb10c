"""`push:`: APNs and FCM credentials read from files beside the configuration or from the environment, checked when
the configuration loads (with file:line problems), and never repeated in a message, a repr or a log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from callbuddy_pbx.config import load_config
from callbuddy_pbx.config.push import APNS_KEY_ENV, DEFAULT_PUSH_WAIT_S, FCM_ACCOUNT_ENV, GOOGLE_TOKEN_URI, PushConfig
from tests.config_files import Write, problems_of, write
from tests.push_servers import CLIENT_EMAIL, PROJECT_ID, pem

__all__ = ["write"]  # fixture

APNS_PEM = pem(ec.generate_private_key(ec.SECP256R1()))
RSA_PEM = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
KEY_LINE = APNS_PEM.splitlines()[1]  # a line of key material: must never be printed
RSA_LINE = RSA_PEM.splitlines()[1]

APNS = """\
push:
  apns:
    key_id: ABC123DEFG
    team_id: DEF123GHIJ
    key_file: keys/AuthKey.p8
    bundle_id: com.example.salon
"""


def account(**fields: object) -> str:
    data = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": "0123abcd",
        "private_key": RSA_PEM,
        "client_email": CLIENT_EMAIL,
        "token_uri": GOOGLE_TOKEN_URI,
        **fields,
    }
    return json.dumps({key: value for key, value in data.items() if value is not None})


@pytest.fixture(autouse=True)
def no_push_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(APNS_KEY_ENV, raising=False)
    monkeypatch.delenv(FCM_ACCOUNT_ENV, raising=False)


def test_no_push_section_means_no_push(write: Write) -> None:
    config = load_config(write("default_region: US\n"))
    assert config.push == PushConfig() and not config.push.enabled
    assert config.push.push_wait_s == DEFAULT_PUSH_WAIT_S == 8


def test_apns_and_fcm_from_files_beside_the_configuration(write: Write) -> None:
    write(APNS_PEM, "conf/keys/AuthKey.p8")
    write(account(), "conf/keys/firebase.json")
    path = write(
        APNS
        + "    environment: sandbox\n  fcm:\n    service_account_file: keys/firebase.json\n  push_wait_seconds: 5\n",
        "conf/site.yaml",
    )
    push = load_config(path).push
    assert push.enabled and push.push_wait_s == 5
    assert push.apns is not None and push.fcm is not None
    assert (push.apns.key_id, push.apns.team_id, push.apns.bundle_id) == (
        "ABC123DEFG",
        "DEF123GHIJ",
        "com.example.salon",
    )
    assert push.apns.sandbox and push.apns.private_key == APNS_PEM
    assert push.apns.key_source == str(path.parent / "keys/AuthKey.p8")  # relative to the file, not the cwd
    assert (push.fcm.project_id, push.fcm.client_email) == (PROJECT_ID, CLIENT_EMAIL)
    assert push.fcm.private_key == RSA_PEM and push.fcm.private_key_id == "0123abcd"


def test_the_project_id_in_yaml_wins_over_the_files(write: Write) -> None:
    write(account(), "fcm.json")
    push = load_config(write("push:\n  fcm:\n    service_account_file: fcm.json\n    project_id: other-proj\n")).push
    assert push.fcm is not None and push.fcm.project_id == "other-proj"


def test_keys_from_the_environment(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APNS_KEY_ENV, APNS_PEM.replace("\n", "\\n"))  # one line, as some environments need
    monkeypatch.setenv(FCM_ACCOUNT_ENV, account())
    text = (
        "push:\n  apns:\n    key_id: ABC123DEFG\n    team_id: DEF123GHIJ\n    bundle_id: com.example.salon\n  fcm: {}\n"
    )
    push = load_config(write(text)).push
    assert push.apns is not None and push.apns.private_key == APNS_PEM
    assert push.apns.key_source == f"${APNS_KEY_ENV}"
    assert push.fcm is not None and push.fcm.private_key == RSA_PEM and push.fcm.key_source == f"${FCM_ACCOUNT_ENV}"


def test_secrets_are_never_in_a_repr(write: Write, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    write(APNS_PEM, "keys/AuthKey.p8")
    write(account(), "fcm.json")
    config = load_config(write(APNS + "  fcm:\n    service_account_file: fcm.json\n"))
    shown = repr(config) + str(config.push) + caplog.text
    assert KEY_LINE not in shown and RSA_LINE not in shown and "0123abcd" not in shown


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("push:\n  apns:\n    key_id: ABC\n", 3, "push.apns.key_id: 'ABC' is not the key's 10-character Key ID"),
        ("push:\n  apns:\n    team_id: ABC123DEFG\n", 2, "push.apns: missing required 'key_id', 'bundle_id'"),
        ("push:\n  apns:\n    bundle_id: com.example.salon.voip\n", 3, "without .voip"),
        ("push:\n  apns:\n    bundle_id: salon\n", 3, "'salon' is not a bundle id"),
        ("push:\n  apns:\n    environment: staging\n", 3, "push.apns.environment: 'staging' is not allowed"),
        (
            "push:\n  apns:\n    key_id: ABC123DEFG\n",
            2,
            f"missing key_file (the .p8 key's path), or set ${APNS_KEY_ENV}",
        ),
        ("push:\n  apns:\n    key_file: nowhere.p8\n", 3, "push.apns.key_file: cannot read"),
        (
            "push:\n  fcm: {}\n",
            2,
            f"push.fcm: missing service_account_file (the service-account file), or set ${FCM_ACCOUNT_ENV}",
        ),
        ("push:\n  fcm:\n    project_id: Bad_Id\n", 3, "push.fcm.project_id: 'Bad_Id' is not a Firebase project id"),
        ("push:\n  push_wait_seconds: 0\n", 2, "push.push_wait_seconds: 0 is not allowed"),
        ("push:\n  push_wait_seconds: 90\n", 2, "push.push_wait_seconds: 90 is too long"),
        ("push:\n  apnz: {}\n", 2, "push.apnz: unknown key (did you mean 'apns'?)"),
    ],
)
def test_problems_name_file_line_and_key(write: Write, text: str, line: int, expected: str) -> None:
    path = write(text)
    problems = problems_of(path)
    assert any(problem.startswith(f"{path}:{line}: ") and expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not a key at all", "is not an APNs key"),
        (RSA_PEM, "is not an APNs key"),  # an RSA key is not what Apple gives
        (pem(ec.generate_private_key(ec.SECP384R1())), "is not an APNs key"),
    ],
)
def test_an_apns_key_file_that_is_not_a_p8_key(write: Write, content: str, expected: str) -> None:
    write(content, "keys/AuthKey.p8")
    path = write(APNS)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:5: push.apns.key_file: ") and expected in problem
    assert RSA_LINE not in problem


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "is not JSON"),
        (json.dumps({"type": "authorized_user"}), "is not a service-account key file"),
        (account(private_key=None), "has no private_key"),
        (account(client_email=None), "has no client_email"),
        (
            account(private_key="-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"),
            "not a PEM private key",
        ),
        (account(private_key=APNS_PEM), "not an RSA key"),
        (account(token_uri="http://example.com/token"), "token_uri that is not https"),
        (account(project_id=None), "names no project_id"),
    ],
)
def test_a_service_account_file_that_cannot_be_used(write: Write, content: str, expected: str) -> None:
    write(content, "fcm.json")
    path = write("push:\n  fcm:\n    service_account_file: fcm.json\n")
    [problem] = problems_of(path)
    assert expected in problem and problem.startswith(f"{path}:")
    assert KEY_LINE not in problem and RSA_LINE not in problem  # the key is never quoted, even when it is wrong


def test_a_bad_key_from_the_environment_is_named_by_its_variable(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APNS_KEY_ENV, RSA_PEM)
    path = write("push:\n  apns:\n    key_id: ABC123DEFG\n    team_id: DEF123GHIJ\n    bundle_id: com.example.salon\n")
    [problem] = problems_of(path)
    assert problem == (
        f"{path}:2: push.apns: ${APNS_KEY_ENV} is not an APNs key "
        "(expected the .p8 file Apple gives: an EC P-256 private key in PEM)"
    )


def test_a_huge_key_file_is_refused_unread(write: Write, tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "AuthKey.p8").write_bytes(b"A" * (1 << 20))
    [problem] = problems_of(write(APNS))
    assert "push.apns.key_file: cannot read" in problem and "larger than 64 KiB" in problem
