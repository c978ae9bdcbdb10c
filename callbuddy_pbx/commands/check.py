"""`callbuddy-pbx check --config F`: validate a configuration, list every problem, or summarise what it sets up.

For each business that texts, every message is rendered with a sample caller and time, with its encoding and
segment count, so a curly quote that turns a text into UCS-2 (and doubles its cost) shows up before it is sent.
Secrets (AMI secret, gateway passwords and tokens, header values, the webhook token) are only said to be set.

It also makes sure the user it runs as (run it as the service's user) can keep the database in storage.path's folder
(creating the folder, as `run` would) and read web.users_file: one `error:` line naming the path, and exit code 1,
even with `--offline`.

Then, unless `--offline`, it asks the PBX over AMI (connect timeout LIVE_CONNECT_TIMEOUT_S) whether the phones and
trunks of `pbx:` exist and are registered, and prints a table of what to fix. A phone or trunk the PBX does not have
(render not applied) makes the exit code 1; warnings and an unreachable PBX keep it 0.

When a ring group has `routing: callbuddy` it also checks ARI (ari_status.py): the HTTP server at `ari.url`, the
ARI user's password, and that a Stasis app can connect; one line each. A refused password or WebSocket makes the
exit code 1, and so does nothing answering at `ari.url` while the PBX answered over AMI.

Push wake-up (check_push.py): the APNs and FCM settings in the summary (never a key), a warning for `push: true`
without credentials, and, from the PBX's contacts, the phones registered with push parameters now.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import pwd
import sys
import time
import unicodedata
from datetime import datetime
from datetime import time as time_of_day
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from callbuddy_pbx.asterisk.ami import AmiAuthError, AmiClient, AmiConnectError, AmiError, AmiMessage
from callbuddy_pbx.asterisk.cel_source import open_cel_source
from callbuddy_pbx.asterisk.cel_sqlite import CelSourceError
from callbuddy_pbx.asterisk.render_dialplan import emergency_numbers, phone_settings
from callbuddy_pbx.commands.check_push import push_lines, push_live_lines, push_warnings
from callbuddy_pbx.commands.display import format_table
from callbuddy_pbx.commands.storage import open_configured
from callbuddy_pbx.config import SECRET_ENV_VAR, Business, CelConfig, Config, GatewayConfig, WebConfig, load_config
from callbuddy_pbx.config.pbx import AUTO_SECRET, PbxConfig
from callbuddy_pbx.db_url import masked
from callbuddy_pbx.message_text import CALLER_NAME_MAX, encoding_of, fields_of, non_gsm_characters, render, segments
from callbuddy_pbx.service.ari_status import check_ari, password_is_derived, routed_numbers
from callbuddy_pbx.service.pbx_status import Finding, Level, PbxStatus, fetch_pbx_status, problems
from callbuddy_pbx.store import SCHEMA_VERSION, StoreError
from callbuddy_pbx.store.db import folder_unwritable
from callbuddy_pbx.untrusted import printable

SAMPLE_CALLER = "Jane"
SAMPLE_TIME = (2025, 11, 21, 15, 5)  # Fri Nov 21, 3:05 PM in the business's time zone
_LONGEST_NAME = "W" * CALLER_NAME_MAX
LIVE_CONNECT_TIMEOUT_S = 3.0
LIVE_ACTION_TIMEOUT_S = 5.0
LIVE_TITLE = "Phones and trunks on the PBX"
CEL_QUIET_WARNING_S = 24 * 3600.0  # no CEL row for this long on a PBX that takes calls: is CEL still being written?
ARI_TITLE = "ARI for the numbers CallBuddy routes"
_LEVEL_LABELS = {"ok": "ok", "info": "info", "warning": "WARNING", "error": "ERROR"}
_STATE_WIDTH = 80


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(summary(config))
    warnings = texting_warnings(config) + dialling_warnings(config) + push_warnings(config)
    if not config.asterisk.secret:
        warnings.insert(0, f"no AMI secret (set asterisk.secret or {SECRET_ENV_VAR}); `run` cannot log in")
    if not config.web.users:
        warnings.append(
            f"nobody can log in to the dashboard yet: add a user with `callbuddy-pbx user add NAME --config "
            f"{config.source or 'callbuddy.yaml'} --role admin`"
        )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    unusable = storage_problems(config)
    for problem in unusable:
        print(f"error: {problem}", file=sys.stderr)
    if getattr(args, "offline", False):
        return 1 if unusable else 0
    return max(1 if unusable else 0, live_check(config))


def storage_problems(config: Config) -> list[str]:
    """Whether this user (the one `run` runs as, when `check` is run as it) can keep the database in storage.path's
    folder (created here when missing, as `run` would) and read web.users_file: one line per problem, naming the path.
    """
    found: list[str] = []
    who = _user_name()
    database = config.storage.path
    folder = database.parent
    # A PostgreSQL store (storage.url) keeps no file here: `database_check` connects to it when checking live.
    unwritable = folder_unwritable(folder) if config.storage.url is None else None
    if unwritable is not None:
        found.append(f"the storage folder {folder} (storage.path) is not writable by {who}: {_os_reason(unwritable)}")
    else:
        if config.storage.url is None and database.exists():
            try:
                with database.open("r+b"):
                    pass
            except OSError as exc:
                found.append(f"the database {database} (storage.path) cannot be written by {who}: {_os_reason(exc)}")
    users_file = config.web.users_file
    if users_file is not None:
        try:
            with users_file.open("rb"):
                pass
        except FileNotFoundError:
            if not users_file.parent.is_dir():
                found.append(f"the folder of the users file {users_file} (web.users_file) does not exist")
        except OSError as exc:
            found.append(f"the users file {users_file} (web.users_file) is not readable by {who}: {_os_reason(exc)}")
    return found


def _user_name() -> str:
    uid = os.geteuid()
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def live_check(config: Config) -> int:
    """Compare the YAML with the running PBX (each of them, with asterisk.nodes) and print what to fix; 1 when a PBX
    lacks what the YAML describes."""
    code, reached = 0, False
    for index, node in enumerate(config.asterisk_nodes):
        one = dataclasses.replace(config, asterisk=node.ami, cel=node.cel)  # the checks below ask "the" Asterisk
        if config.nodes:
            print(f"\n== {node.shown} ==")
        node_code, node_reached = _pbx_check(one)
        code = max(code, node_code)
        if index == 0:  # the server the ARI router follows
            reached = node_reached
        if node.cel.enabled:
            code = max(code, cel_check(one))
    if config.storage.url is not None:
        code = max(code, database_check(config))
    if routed_numbers(config):
        code = max(code, ari_check(config, pbx_reached=reached))
    return code


def database_check(config: Config) -> int:
    """Whether the PostgreSQL store answers and has CallBuddy's tables (brought up to date, as `run` would): one
    line; 1 when it cannot be used."""
    print()

    async def version() -> int:
        async with await open_configured(config.storage, create=False) as store:
            return store.schema_before

    try:
        before = asyncio.run(version())
    except StoreError as exc:
        print(f"Database: ERROR {printable(str(exc), 300)}")
        return 1
    print(f"Database {config.storage.shown}: OK, schema version {SCHEMA_VERSION} (was {before})")
    return 0


def cel_check(config: Config, now: float | None = None) -> int:
    """Whether Asterisk's CEL rows can be read and are being written: one line; 1 when they cannot be read."""
    source = open_cel_source(config.cel, config.storage.url)
    print()
    try:
        probe = source.probe()
    except CelSourceError as exc:
        print(f"CEL (Asterisk's call records): ERROR {printable(str(exc), 300)}")
        return 1
    finally:
        source.close()
    where = f"CEL (Asterisk's call records) in {printable(cel_where(config.cel, config.storage.url), 200)}"
    if probe.rows == 0:
        print(f"{where}: WARNING no rows yet; make a test call (cel.conf: enable = yes; cel_sqlite3_custom loaded)")
        return 0
    age = (time.time() if now is None else now) - probe.latest_at if probe.latest_at is not None else None
    newest = f"newest {printable(probe.latest_event or '?', 40)}"
    if age is None:
        print(f"{where}: WARNING {probe.rows} rows, but the newest row's time cannot be read (check cel.timezone)")
    elif age > CEL_QUIET_WARNING_S:
        print(f"{where}: WARNING no row for {age / 3600:.0f} h ({newest}); is cel_sqlite3_custom still loaded?")
    else:
        print(f"{where}: ok, {probe.rows} rows, {newest} {max(age, 0):.0f} s ago")
    return 0


def _pbx_check(config: Config) -> tuple[int, bool]:
    """The phones and trunks over AMI: (exit code, whether the PBX answered)."""
    ami = config.asterisk
    where = f"{ami.host}:{ami.port}"
    print()
    if not ami.secret:
        print(f"PBX at {where}: no AMI secret, so the live checks were skipped")
        return 0, False
    try:
        status = asyncio.run(_fetch(config))
    except AmiAuthError as exc:
        print(f"PBX at {where} refused the AMI login ({_reason(exc, where)}); skipped the live checks")
        return 0, True
    except AmiConnectError as exc:
        print(f"PBX not reachable at {where}: {_reason(exc, where)}; skipped the live checks")
        return 0, False
    except AmiError as exc:
        print(f"PBX at {where}: the live checks did not complete ({_reason(exc, where)})")
        return 0, True
    findings = problems(config, status)
    print(live_table(findings))
    print(_counts(findings, "on the PBX"))
    for line in push_live_lines(config, status):
        print(printable(line, 300))
    return (1 if any(finding.level == "error" for finding in findings) else 0), True


def ari_check(config: Config, *, pbx_reached: bool) -> int:
    """ARI for `routing: callbuddy` numbers, one line per check; 1 on an error. Nothing answering at ari.url is only
    a warning when the PBX did not answer over AMI either (not running, or not this machine's)."""
    unreachable: Level = "error" if pbx_reached else "warning"
    findings = asyncio.run(
        check_ari(
            config.ari, derived=password_is_derived(config), timeout_s=LIVE_ACTION_TIMEOUT_S, unreachable=unreachable
        )
    )
    print()
    print(f"{ARI_TITLE} ({', '.join(routed_numbers(config))}):")
    for finding in findings:
        fix = f"; to fix: {printable(finding.fix)}" if finding.fix else ""
        line = f"{printable(finding.subject, 60)}: {printable(finding.state, 300)}{fix}"
        print(f"  {_LEVEL_LABELS[finding.level]} {line}")
    print(_counts(findings, "on ARI"))
    return 1 if any(finding.level == "error" for finding in findings) else 0


def _counts(findings: list[Finding], where: str) -> str:
    errors = sum(1 for finding in findings if finding.level == "error")
    warnings = sum(1 for finding in findings if finding.level == "warning")
    return f"{errors} error{'' if errors == 1 else 's'}, {warnings} warning{'' if warnings == 1 else 's'} {where}"


async def _fetch(config: Config) -> PbxStatus:
    ami = dataclasses.replace(
        config.asterisk,
        connect_timeout_s=min(config.asterisk.connect_timeout_s, LIVE_CONNECT_TIMEOUT_S),
        action_timeout_s=min(config.asterisk.action_timeout_s, LIVE_ACTION_TIMEOUT_S),
        ping_interval_s=0.0,  # one short session: no keepalive
    )
    client = AmiClient(ami, on_event=_ignore, events="off")
    try:
        await client.connect()
        return await fetch_pbx_status(client)
    finally:
        await client.close()


def _ignore(message: AmiMessage, received_at: float) -> None:
    """Events are off; anything that still arrives is not needed here."""


def _reason(exc: AmiError, where: str) -> str:
    """The client's message without its `AMI host:port: ` prefix, escaped (it may quote what the peer sent)."""
    text = str(exc)
    for prefix in (f"AMI {where}: ", f"AMI login to {where} "):
        text = text.removeprefix(prefix)
    return printable(text, 200)


def live_table(findings: list[Finding]) -> str:
    """The findings as a titled table. Every cell is escaped: states quote what the PBX sent."""
    if not findings:
        return f"{LIVE_TITLE}: none configured, none on the PBX"
    rows = [("", "Phone or trunk", "State", "What to fix")]
    for finding in findings:
        rows.append(
            (
                _LEVEL_LABELS[finding.level],
                printable(finding.subject, 40),
                printable(finding.state, _STATE_WIDTH),
                printable(finding.fix),
            )
        )
    return f"{LIVE_TITLE}:\n{format_table(rows)}"


def summary(config: Config) -> str:
    """What the configuration means, in a few lines. Secrets are only said to be set, never shown."""
    lines = [f"{config.source}: OK"]
    for node in config.asterisk_nodes:
        ami = node.ami
        secret = "set" if ami.secret else "NOT set"
        label = "Asterisk:" if not node.name else f"  {node.name}:"
        if node.name and node is config.nodes[0]:
            lines.append("Asterisk:   several servers (asterisk.nodes)")
        lines.append(f"{label:<12}{ami.host}:{ami.port} as {ami.username} (secret {secret})")
        if node.name:
            lines.append(f"              CEL: {cel_line(node.cel, config.storage.url)}")
    if config.businesses:
        lines.append(f"Businesses: {len(config.businesses)}")
        for business in config.businesses:
            numbers = ", ".join(business.numbers)
            on_node = f", on {business.node}" if business.node else ""
            lines.append(
                f"  {business.name}: {numbers} (time zone {business.timezone}, region {business.default_region}"
                f"{on_node})"
            )
            lines.extend("    " + line for line in texting_lines(business))
    else:
        lines.append("Businesses: none (every call that starts in an inbound context is tracked)")
    if config.gateways:
        lines.append("Gateways:   " + "\n            ".join(gateway_line(gateway) for gateway in config.gateways))
    if config.gateways or config.web != WebConfig():
        lines.append(f"Web:        {web_line(config.web)}")
    lines.append(f"Inbound:    contexts {', '.join(config.inbound.contexts)}")
    if config.inbound.trunk_endpoints:
        lines.append(f"            trunks {', '.join(config.inbound.trunk_endpoints)}")
    lines += pbx_lines(config.pbx)
    lines += dialling_lines(config)
    lines += push_lines(config)
    if routed_numbers(config):
        lines.append(f"ARI:        {ari_line(config)}")
    lines.append(f"Database:   {config.storage.shown}")
    if not config.nodes:
        lines.append(f"CEL:        {cel_line(config.cel, config.storage.url)}")
    lines.append(f"Logging:    {config.logging.level}, {config.logging.format}")
    return "\n".join(lines)


def cel_where(cel: CelConfig, database_url: str | None) -> str:
    """Where CEL is read from, for people: the SQLite file, or the PostgreSQL table (its URL masked)."""
    if cel.pgsql is not None:
        url = cel.pgsql.url or database_url
        return f"{masked(url) if url else 'storage.url'} (table {cel.pgsql.table})"
    return f"{cel.sqlite} (table {cel.table})"


def cel_line(cel: CelConfig, database_url: str | None = None) -> str:
    if not cel.enabled:
        return "off (calls that happen while CallBuddy is stopped or cut off from Asterisk are not found)"
    minutes = cel.text_within_s / 60
    where = cel_where(cel, database_url)
    return f"{where}; calls found there are texted when they ended less than {minutes:g} min ago"


def pbx_lines(pbx: PbxConfig) -> list[str]:
    """What `render` will set up, in a few lines (secrets only said to be set)."""
    if not (pbx.phones or pbx.ring_groups or pbx.trunks):
        return []
    lines = [f"PBX:        Asterisk {pbx.asterisk_version}, SIP on port {pbx.sip_port}"]
    for phone in pbx.phones:
        secret = "derived secret" if phone.secret == AUTO_SECRET else "own secret"
        mailbox = ", voicemail" if phone.voicemail else ""
        person = f"; used by {phone.person}" if phone.person else ""
        lines.append(f"  phone {phone.extension} {phone.name} ({phone.business}; {secret}{mailbox}{person})")
    for group in pbx.ring_groups:
        action = group.no_answer
        then = {"voicemail": f"voicemail {action.extension}", "forward": f"forward to {action.number}"}
        members = ", ".join(group.members)
        routed = "; routed by CallBuddy, fail-open in the dialplan" if group.routing == "callbuddy" else ""
        lines.append(
            f"  {group.number} rings {members} ({group.strategy.replace('_', ' ')}, {group.ring_s} s{routed}), "
            f"then {then.get(action.action, 'hang up')}"
        )
    for trunk in pbx.trunks:
        lines.append(f"  trunk {trunk.name} ({trunk.template}): {', '.join(trunk.dids) or 'no numbers'}")
    return lines


def dialling_lines(config: Config) -> list[str]:
    """What each phone may dial out, as its caller ID, and where an emergency call says it is."""
    if not config.pbx.phones or not config.pbx.trunks:
        return []
    emergency = ", ".join(emergency_numbers(config))
    trunk = config.pbx.trunks[0].name
    lines = [f"Dialling:   emergency {emergency} from every phone, straight to trunk {trunk}'s carrier address"]
    businesses = {business.name: business for business in config.businesses}
    for phone in config.pbx.phones:
        business = businesses.get(phone.business)
        if business is None:
            continue
        settings = phone_settings(phone, business)
        kinds = ["national"] + [kind for kind in ("international", "premium") if settings[f"CB_{kind.upper()}"] == "1"]
        location = phone.location or "NOT SET"
        lines.append(
            f"  phone {phone.extension}: caller ID {settings['CB_CALLERID']}; {', '.join(kinds)}; "
            f"at most {phone.max_outbound_calls} calls out; location {location}"
        )
    return lines


def dialling_warnings(config: Config) -> list[str]:
    """Phones that cannot reach the emergency services, or whose caller's address the dispatcher would not get."""
    pbx = config.pbx
    if pbx.phones and not pbx.trunks:
        return ["pbx: phones but no trunk: no phone can call out, not even the emergency services"]
    return [
        f"phone {phone.extension} has no location (pbx.phones[].location): emergency calls from it carry no "
        "dispatchable address; set it, and register the address of its caller ID with the carrier"
        for phone in pbx.phones
        if not phone.location
    ]


def ari_line(config: Config) -> str:
    """Where the service reaches ARI and as whom; the password is only said to be set, and where it comes from."""
    ari = config.ari
    if password_is_derived(config):
        password = "derived from pbx.secret_key, as render writes it"  # noqa: S105 (a description)
    else:
        password = "set" if ari.password else "NOT set"
    return f"{_safe_url(ari.url)} as {ari.username}, app {ari.app} (password {password})"


def _messages(business: Business) -> list[tuple[str, str]]:
    """(label, template) of every text a business can send."""
    settings = business.text_back
    messages = [("template", settings.template)]
    if settings.after_hours_template is not None:
        messages.append(("after_hours_template", settings.after_hours_template))
    messages += [("help_text", settings.help_text), ("opt_out_text", settings.opt_out_text)]
    return messages


def _sample(business: Business, template: str, caller_name: str = SAMPLE_CALLER) -> str:
    when = datetime(*SAMPLE_TIME, tzinfo=ZoneInfo(business.timezone))
    return render(
        template, business=business.name, booking_url=business.booking_url, caller_name=caller_name, when=when
    )


def _cost(text: str) -> str:
    count = segments(text)
    return f"{encoding_of(text)}, {count} segment{'s' if count > 1 else ''}"


def texting_lines(business: Business) -> list[str]:
    """The business's text-back settings, and each of its messages as a caller would read it."""
    settings = business.text_back
    if not settings.enabled:
        return ["text-back: off"]
    sender = settings.sender or "the number called"
    window_h = f"{settings.window_s / 3600:g}"
    lines = [
        f"text-back: on after {', '.join(settings.outcomes)}",
        f"  via {settings.gateway} from {sender}; at most one text per caller per {window_h} h",
    ]
    timing = []
    if settings.hold_off_s:
        timing.append(f"hold-off {settings.hold_off_s:g} s")
    if settings.min_ring_s:
        timing.append(f"no text when abandoned within {settings.min_ring_s:g} s")
    if settings.quiet_hours is not None:
        quiet = settings.quiet_hours
        timing.append(f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} (texts wait)")
    if timing:
        lines.append("  " + "; ".join(timing))
    if business.hours is not None or business.holidays:
        lines.append(f"  open: {_hours_text(business)}")
    for label, template in _messages(business):
        text = _sample(business, template)
        lines.append(f"{label} ({_cost(text)}): {text}")
    return lines


def _hours_text(business: Business) -> str:
    parts = []
    if business.hours is not None:
        for name, intervals in zip(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), business.hours.days, strict=True):
            spans = ", ".join(f"{_hhmm(start)}-{_hhmm(end)}" for start, end in intervals)
            parts.append(f"{name} {spans or 'closed'}")
    if business.holidays:
        parts.append(f"closed on {len(business.holidays)} holiday{'s' if len(business.holidays) > 1 else ''}")
    return "; ".join(parts)


def _hhmm(value: time_of_day) -> str:
    return "24:00" if value == time_of_day.max else f"{value:%H:%M}"


def texting_warnings(config: Config) -> list[str]:
    """What will work but probably not as meant: costly encodings, long texts, unused or unanswerable settings."""
    warnings: list[str] = []
    for business in config.businesses:
        settings = business.text_back
        if not settings.enabled:
            continue
        for label, template in _messages(business):
            where = f"{business.name}: {label}"
            text = _sample(business, template)
            odd = non_gsm_characters(text)
            if odd:
                named = ", ".join(_character_name(char) for char in odd)
                verb = "makes" if len(odd) == 1 else "make"
                warnings.append(f"{where}: {named} {verb} the text UCS-2 (70 characters per segment instead of 160)")
            count = segments(text)
            if count > 1:
                warnings.append(f"{where}: {count} segments (each text is billed as {count} messages)")
            elif "caller_name" in fields_of(template):
                longest = segments(_sample(business, template, _LONGEST_NAME))
                if longest > 1:
                    warnings.append(
                        f"{where}: with a {CALLER_NAME_MAX}-character caller name it takes {longest} segments"
                    )
            if label in ("template", "after_hours_template") and "stop" not in text.lower():
                warnings.append(f"{where}: does not say how to opt out (e.g. 'Reply STOP to opt out')")
        if settings.after_hours_template is not None and business.hours is None and not business.holidays:
            warnings.append(f"{business.name}: after_hours_template is never used (no hours or holidays are set)")
        if settings.sender and not settings.sender.startswith("+"):
            warnings.append(
                f"{business.name}: sender {settings.sender!r} is not a phone number: callers cannot reply STOP or "
                "HELP, and some countries (US, Canada) do not deliver texts from alphanumeric senders"
            )
    return warnings


def _character_name(char: str) -> str:
    return f"{char!r} ({unicodedata.name(char, f'U+{ord(char):04X}')})"


def gateway_line(gateway: GatewayConfig) -> str:
    """One gateway: where it sends, as whom, and whether its secrets are set (never their values)."""
    rate = "unlimited" if gateway.rate_per_s == 0 else f"{gateway.rate_per_s:g}/s per sender"
    if gateway.kind == "smpp":
        where = f"{gateway.host}:{gateway.port} as {gateway.system_id}, password {_set(gateway.password)}"
    elif gateway.kind == "twilio":
        where = f"{_safe_url(gateway.url)}, auth token {_set(gateway.auth_token)}"
    elif gateway.kind == "kannel":
        where = f"{_safe_url(gateway.url)} as {gateway.username}, password {_set(gateway.password)}"
    elif gateway.kind == "generic":
        headers = (
            f", headers {', '.join(name for name, _ in gateway.headers)} (values hidden)" if gateway.headers else ""
        )
        where = f"{gateway.method} {gateway.body_format} to {_safe_url(gateway.url)}{headers}"
    else:
        where = "texts are only recorded, never sent"
    return f"{gateway.name} ({gateway.kind}): {where}; {rate}"


def web_line(web: WebConfig) -> str:
    public = f"public URL {web.public_url}" if web.public_url else "no public URL"
    return f"{web.host}:{web.port}, {public}, webhook token {_set(web.webhook_token)}"


def _set(secret: str) -> str:
    return "set" if secret else "NOT set"


def _safe_url(url: str) -> str:
    """A URL without credentials or query string, which may carry keys."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    hidden = " (query hidden)" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{hidden}"
