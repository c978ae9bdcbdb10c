"""`push:`: the credentials that wake mobile softphones through Apple's and Google's push services, and how long a
call waits for a woken phone to register.

```yaml
push:
  push_wait_seconds: 8            # default 8; the router also keeps it under half of a ring group's ring time
  apns:                           # token-based APNs (Apple Developer > Keys, with Apple Push Notifications enabled)
    key_id: ABC123DEFG
    team_id: DEF123GHIJ
    key_file: keys/AuthKey_ABC123DEFG.p8   # relative to this file; or the key itself in $CALLBUDDY_APNS_KEY
    bundle_id: com.example.softphone      # the app; its VoIP pushes go to com.example.softphone.voip
    environment: production       # or sandbox (apps built from Xcode)
  fcm:                            # FCM HTTP v1 with a service account (Firebase console > Service accounts)
    service_account_file: keys/firebase.json   # or its JSON text in $CALLBUDDY_FCM_SERVICE_ACCOUNT
    project_id: salon-app         # optional: the file's project_id
```

The keys are read and parsed when the configuration is loaded (and by `check`), so a wrong file is a problem with its
line, not a failed push during a call. Key material is kept out of every message and every repr.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from callbuddy_pbx.config.reader import Reader, key_node, shown

APNS_KEY_ENV = "CALLBUDDY_APNS_KEY"  # the .p8 key's PEM text, read when `push.apns.key_file` is not given
FCM_ACCOUNT_ENV = (
    "CALLBUDDY_FCM_SERVICE_ACCOUNT"  # the service-account JSON, when `push.fcm.service_account_file` is not
)
DEFAULT_PUSH_WAIT_S = (
    8.0  # iOS wakes in ~2 s at p95; over 10 s when the app was killed: the call does not wait that long
)
MAX_PUSH_WAIT_S = 60.0
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (an address)
MAX_KEY_FILE_BYTES = 64 * 1024  # a .p8 key is ~250 bytes and a service-account file ~2.3 KB
_PUSH_KEYS = ("push_wait_seconds", "apns", "fcm")
_APNS_KEYS = ("key_id", "team_id", "key_file", "bundle_id", "environment")
_FCM_KEYS = ("service_account_file", "project_id")
_APPLE_ID = re.compile(r"[A-Z0-9]{10}")  # Apple's key ids and team ids: ten upper-case letters and digits
_BUNDLE_ID = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,61}[a-z0-9]")  # Google Cloud project ids


@dataclass(frozen=True, slots=True)
class ApnsConfig:
    key_id: str
    team_id: str
    bundle_id: str  # the app; its VoIP topic is `<bundle_id>.voip`
    private_key: str = field(repr=False)  # the .p8 key's PEM text (EC P-256)
    sandbox: bool = False  # `environment: sandbox`: tokens of development builds
    key_source: str = ""  # the file or environment variable the key came from, for `check` and messages


@dataclass(frozen=True, slots=True)
class FcmConfig:
    project_id: str
    client_email: str
    private_key: str = field(repr=False)  # the service account's PEM (RSA)
    private_key_id: str = field(default="", repr=False)
    token_uri: str = GOOGLE_TOKEN_URI
    key_source: str = ""


@dataclass(frozen=True, slots=True)
class PushConfig:
    apns: ApnsConfig | None = None
    fcm: FcmConfig | None = None
    push_wait_s: float = DEFAULT_PUSH_WAIT_S  # how long a call waits for a woken phone's new registration

    @property
    def enabled(self) -> bool:
        return self.apns is not None or self.fcm is not None


class PushReader:
    """Reads `push:` with a Reader (whose problem list it adds to); key files are relative to `base_dir`."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def push(self, node: yaml.Node, base_dir: Path) -> PushConfig:
        section = self.r.mapping(node, "push", _PUSH_KEYS)
        if not section:
            return PushConfig()
        wait_s = DEFAULT_PUSH_WAIT_S
        if "push_wait_seconds" in section:
            value = self.r.positive(section["push_wait_seconds"], "push.push_wait_seconds")
            if value is not None and value > MAX_PUSH_WAIT_S:
                self.r.problem(
                    section["push_wait_seconds"],
                    "push.push_wait_seconds",
                    f"{value:g} is too long (at most {MAX_PUSH_WAIT_S:g} seconds; a caller will not wait longer)",
                )
            elif value is not None:
                wait_s = value
        # Problems of a whole subsection are reported at its key's line (`apns:`), not at its first setting.
        apns = (
            self._apns(section["apns"], key_node(node, "apns") or section["apns"], base_dir)
            if "apns" in section
            else None
        )
        fcm = self._fcm(section["fcm"], key_node(node, "fcm") or section["fcm"], base_dir) if "fcm" in section else None
        return PushConfig(apns=apns, fcm=fcm, push_wait_s=wait_s)

    # -- APNs ----------------------------------------------------------------------------------------------------

    def _apns(self, node: yaml.Node, at: yaml.Node, base_dir: Path) -> ApnsConfig | None:
        section = self.r.mapping(node, "push.apns", _APNS_KEYS)
        if section is None:
            return None
        missing = [key for key in ("key_id", "team_id", "bundle_id") if key not in section]
        if missing:
            self.r.problem(at, "push.apns", f"missing required {', '.join(map(repr, missing))}")
        key_id = self._apple_id(section, "key_id", "the key's 10-character Key ID")
        team_id = self._apple_id(section, "team_id", "your 10-character Team ID")
        bundle_id = None
        if "bundle_id" in section:
            bundle_id = self.r.non_empty(section["bundle_id"], "push.apns.bundle_id", "the app's bundle id")
            if bundle_id is not None and not _BUNDLE_ID.fullmatch(bundle_id):
                self.r.problem(
                    section["bundle_id"],
                    "push.apns.bundle_id",
                    f"{shown(bundle_id)} is not a bundle id (e.g. com.example.softphone; without .voip)",
                )
                bundle_id = None
            elif bundle_id is not None and bundle_id.endswith(".voip"):
                self.r.problem(
                    section["bundle_id"], "push.apns.bundle_id", "give the app's bundle id without .voip (it is added)"
                )
                bundle_id = None
        sandbox = False
        if "environment" in section:
            choice = self.r.choice(
                section["environment"], "push.apns.environment", ("production", "sandbox"), upper=False
            )
            sandbox = choice == "sandbox"
        key = self._secret_text(section, at, "key_file", APNS_KEY_ENV, base_dir, "push.apns", "the .p8 key's path")
        if key is None:
            return None
        text, source, where = key
        if not _is_apns_key(text):
            self.r.problem(
                where,
                "push.apns.key_file" if "key_file" in section else "push.apns",
                f"{source} is not an APNs key (expected the .p8 file Apple gives: an EC P-256 private key in PEM)",
            )
            return None
        if key_id is None or team_id is None or bundle_id is None:
            return None
        return ApnsConfig(key_id, team_id, bundle_id, text, sandbox=sandbox, key_source=source)

    def _apple_id(self, section: dict[str, yaml.Node], key: str, what: str) -> str | None:
        if key not in section:
            return None
        value = self.r.non_empty(section[key], f"push.apns.{key}", what)
        if value is not None and not _APPLE_ID.fullmatch(value):
            self.r.problem(section[key], f"push.apns.{key}", f"{shown(value)} is not {what} (10 letters and digits)")
            return None
        return value

    # -- FCM -----------------------------------------------------------------------------------------------------

    def _fcm(self, node: yaml.Node, at: yaml.Node, base_dir: Path) -> FcmConfig | None:
        section = self.r.mapping(node, "push.fcm", _FCM_KEYS)
        if section is None:
            return None
        project_id = None
        if "project_id" in section:
            project_id = self.r.non_empty(section["project_id"], "push.fcm.project_id", "a Firebase project id")
            if project_id is not None and not _PROJECT_ID.fullmatch(project_id):
                self.r.problem(
                    section["project_id"], "push.fcm.project_id", f"{shown(project_id)} is not a Firebase project id"
                )
                return None
        account = self._secret_text(
            section, at, "service_account_file", FCM_ACCOUNT_ENV, base_dir, "push.fcm", "the service-account file"
        )
        if account is None:
            return None
        text, source, where = account
        path = "push.fcm.service_account_file" if "service_account_file" in section else "push.fcm"
        fields, problem = _service_account(text)
        if problem:
            self.r.problem(where, path, f"{source} {problem}")
            return None
        project_id = project_id or fields.get("project_id", "")
        if not project_id:
            self.r.problem(at, "push.fcm", f"{source} names no project_id: give push.fcm.project_id")
            return None
        return FcmConfig(
            project_id=project_id,
            client_email=fields["client_email"],
            private_key=fields["private_key"],
            private_key_id=fields.get("private_key_id", ""),
            token_uri=fields.get("token_uri", GOOGLE_TOKEN_URI),
            key_source=source,
        )

    # -- shared --------------------------------------------------------------------------------------------------

    def _secret_text(
        self,
        section: dict[str, yaml.Node],
        node: yaml.Node,
        key: str,
        variable: str,
        base_dir: Path,
        path: str,
        what: str,
    ) -> tuple[str, str, yaml.Node] | None:
        """(text, where it came from, the node to report at) of a key given as a file or in an environment
        variable; None after a problem."""
        if key not in section:
            text = os.environ.get(variable, "")
            if not text.strip():
                self.r.problem(node, path, f"missing {key} ({what}), or set ${variable} to its contents")
                return None
            if "\n" not in text and text.lstrip().startswith("-----BEGIN"):  # a PEM written on one line with \n
                text = text.replace("\\n", "\n")
            return text, f"${variable}", node
        name = self.r.non_empty(section[key], f"{path}.{key}", what)
        if name is None:
            return None
        file = base_dir / Path(name).expanduser()
        try:
            with file.open("rb") as opened:
                data = opened.read(MAX_KEY_FILE_BYTES + 1)
            if len(data) > MAX_KEY_FILE_BYTES:
                raise ValueError(f"larger than {MAX_KEY_FILE_BYTES // 1024} KiB (is it the right file?)")
            return data.decode("utf-8"), str(file), section[key]
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        self.r.problem(section[key], f"{path}.{key}", f"cannot read {file}: {reason}")
        return None


def _is_apns_key(text: str) -> bool:
    try:
        key = load_pem_private_key(text.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)


def _service_account(text: str) -> tuple[dict[str, str], str]:
    """The string fields of a service-account key file, or a problem (never quoting the file)."""
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        return {}, f"is not JSON{f' (line {line})' if line else ''}"
    if not isinstance(data, dict) or data.get("type") != "service_account":
        return {}, 'is not a service-account key file (expected "type": "service_account")'
    fields = {key: value for key, value in data.items() if isinstance(value, str)}
    absent = [key for key in ("client_email", "private_key") if not fields.get(key)]
    if absent:
        return {}, f"has no {' or '.join(absent)}"
    token_uri = fields.get("token_uri", GOOGLE_TOKEN_URI)
    if not token_uri.startswith("https://"):
        return {}, "has a token_uri that is not https"
    try:
        key = load_pem_private_key(fields["private_key"].encode("utf-8"), password=None)
    except (ValueError, TypeError):
        return {}, "has a private_key that is not a PEM private key"
    if not isinstance(key, rsa.RSAPrivateKey):
        return {}, "has a private_key that is not an RSA key"
    return fields, ""
