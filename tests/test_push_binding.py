"""Push bindings read from the Contact URIs Asterisk reports (AMI ContactStatus `URI`, ARI `contact_info.uri`):
RFC 8599, Linphone's flavours, and the garbage a phone (or anyone registering as one) may send."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callbuddy_pbx.push.binding import MAX_URI_CHARS, Provider, PushBinding, mask_token, parse_contact, uri_params

APNS_TOKEN = "a1b2c3d4" * 8  # 64 hex digits, as iOS gives them
FCM_TOKEN = "dXk3_Qm9R0e:APA91bHuVx-0aZ_" + "k" * 120  # FCM registration tokens: ~160 URL-safe characters


def test_rfc8599_apns_voip_binding() -> None:
    uri = (
        f"sip:6001@192.0.2.10:50326;transport=tcp;pn-provider=apns;pn-prid={APNS_TOKEN}"
        ";pn-param=ABCDE12345.com.example.salon.voip"
    )
    binding = parse_contact(uri)
    assert binding == PushBinding(
        Provider.APNS, APNS_TOKEN, app="com.example.salon", team_id="ABCDE12345", sandbox=False
    )


def test_rfc8599_apns_without_team_id_or_service() -> None:
    binding = parse_contact(f"sip:6001@192.0.2.10;pn-provider=apns;pn-prid={APNS_TOKEN};pn-param=com.example.salon")
    assert binding is not None
    assert (binding.app, binding.team_id) == ("com.example.salon", None)
    binding = parse_contact(f"sip:6001@192.0.2.10;pn-provider=APNS;pn-prid={APNS_TOKEN}")
    assert binding is not None and binding.app is None  # the configured bundle applies


def test_rfc8599_fcm_binding_names_the_project() -> None:
    uri = f"sips:6002@198.51.100.7:5061;pn-provider=fcm;pn-prid={FCM_TOKEN};pn-param=salon-app-1234"
    assert parse_contact(uri) == PushBinding(Provider.FCM, FCM_TOKEN, app="salon-app-1234")


def test_linphone_rfc8599_flavour_picks_the_voip_token_and_the_sandbox() -> None:
    """Linphone 4.4+: `apns.dev` for a development token, both tokens in pn-prid, `remote&voip` services."""
    remote = "f" * 64
    uri = (
        "sip:6003@10.0.0.5:5060;pn-provider=apns.dev;"
        f"pn-prid={APNS_TOKEN}:voip%26{remote}:remote;pn-param=ABCDE12345.org.linphone.phone.remote%26voip"
    )
    binding = parse_contact(uri)
    assert binding is not None
    assert (binding.device_token, binding.app, binding.sandbox) == (APNS_TOKEN, "org.linphone.phone", True)
    assert binding.team_id == "ABCDE12345"


def test_linphone_with_only_a_remote_token_cannot_ring() -> None:
    uri = (
        f"sip:6003@10.0.0.5;pn-provider=apns;pn-prid={APNS_TOKEN}:remote;pn-param=ABCDE12345.org.linphone.phone.remote"
    )
    assert parse_contact(uri) is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            f"pn-type=apple;pn-tok={APNS_TOKEN};app-id=org.linphone.phone.voip.dev;pn-msg-str=IM_MSG;pn-call-str=IC_MSG",
            PushBinding(Provider.APNS, APNS_TOKEN, app="org.linphone.phone", sandbox=True, dialect="linphone"),
        ),
        (
            f"pn-type=apple;pn-tok={APNS_TOKEN};app-id=org.linphone.phone.prod;pn-silent=1;pn-timeout=0",
            PushBinding(Provider.APNS, APNS_TOKEN, app="org.linphone.phone", sandbox=False, dialect="linphone"),
        ),
        (
            f"pn-type=firebase;pn-tok={FCM_TOKEN};app-id=929724111839",
            PushBinding(Provider.FCM, FCM_TOKEN, app="929724111839", dialect="linphone"),
        ),
        (
            f"pn-type=google;pn-tok={FCM_TOKEN}",
            PushBinding(Provider.FCM, FCM_TOKEN, dialect="linphone"),
        ),
    ],
)
def test_linphone_legacy_dialect(params: str, expected: PushBinding) -> None:
    assert parse_contact(f"sip:6004@203.0.113.9:43210;transport=udp;{params}") == expected


def test_a_contact_as_asterisk_rewrites_it() -> None:
    """rewrite_contact=yes: Asterisk puts the NAT address in the URI and keeps the phone's own in x-ast-orig-host;
    flag parameters (`ob`) have no value."""
    uri = (
        f"sip:6001@203.0.113.5:34567;transport=TCP;pn-provider=apns;pn-prid={APNS_TOKEN}"
        ";pn-param=ABCDE12345.com.example.salon.voip;ob;x-ast-orig-host=10.0.0.2:5060"
    )
    binding = parse_contact(uri)
    assert binding is not None and (binding.device_token, binding.app) == (APNS_TOKEN, "com.example.salon")


def test_name_addr_and_uri_headers() -> None:
    uri = f"<sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN}?X-Foo=pn-provider>;expires=600"
    binding = parse_contact(uri)
    assert binding is not None and binding.device_token == FCM_TOKEN


def test_percent_encoded_values_are_decoded() -> None:
    token = FCM_TOKEN.replace(":", "%3A")
    binding = parse_contact(f"sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={token}")
    assert binding is not None and binding.device_token == FCM_TOKEN


@pytest.mark.parametrize(
    "uri",
    [
        "sip:6001@192.0.2.10:5060;transport=udp",  # an ordinary phone
        "sip:6001@192.0.2.10;pn-provider=apns",  # a de-registration: no pn-prid
        "sip:6001@192.0.2.10;pn-provider=apns;pn-prid=",
        f"sip:6001@192.0.2.10;pn-provider=webpush;pn-prid={FCM_TOKEN}",  # a provider we do not speak
        f"sip:6001@192.0.2.10;pn-provider=apns;pn-prid={APNS_TOKEN[:-1]}z",  # not hex
        f"sip:6001@192.0.2.10;pn-provider=apns;pn-prid={APNS_TOKEN};pn-param=..",
        f"sip:6001@192.0.2.10;pn-provider=apns;pn-prid={APNS_TOKEN};pn-param=com.example/../x",
        f"sip:6001@192.0.2.10;pn-provider=apns;pn-prid={APNS_TOKEN}%0D%0AX-Evil:1",  # a line break, encoded
        f"sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN}%",  # a stray %
        f"sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN}%zz",
        f"sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN}%C3%A9",  # not ASCII once decoded
        f"sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN};pn-prid={FCM_TOKEN}x",  # repeated: ambiguous
        "sip:6001@192.0.2.10;pn-provider=fcm;pn-prid=short",
        f"sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN};pn-param=a b",
        f"http://192.0.2.10/;pn-provider=fcm;pn-prid={FCM_TOKEN}",  # not a SIP URI
        f"<sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN}",  # unclosed name-addr
        f"sip:6001@192.0.2.10;pn-type=blackberry;pn-tok={FCM_TOKEN}",
        f"sip:6001@192.0.2.10;pn-provider=fcm;pn-prid={FCM_TOKEN}\n",
        "",
        "sip:",
        "sip:6001@h;" + ";".join(f"p{i}=1" for i in range(60)),  # too many parameters
    ],
)
def test_garbage_gives_no_binding(uri: str) -> None:
    assert parse_contact(uri) is None


@pytest.mark.parametrize("encoded", ["%0D%0A", "%00", "%7F", "%C3%A9", "%", "%4", "%G0"])
def test_values_that_decode_to_control_or_non_ascii_characters_are_refused(encoded: str) -> None:
    """Any parameter, not only the push ones: a decoded value may end up in a log line or a header."""
    assert uri_params(f"sip:6001@192.0.2.10;x-note=a{encoded}") is None
    assert uri_params("sip:6001@192.0.2.10;x-note=a%41b") == {"x-note": "aAb"}


def test_a_uri_at_asterisks_512_character_limit() -> None:
    head = f"sip:6001@192.0.2.10:5060;transport=tls;pn-provider=fcm;pn-prid={FCM_TOKEN};pn-param=salon-app"
    padding = ";x-pad=" + "a" * (512 - len(head) - len(";x-pad="))
    uri = head + padding
    assert len(uri) == 512 == MAX_URI_CHARS
    binding = parse_contact(uri)
    assert binding is not None and binding.device_token == FCM_TOKEN
    assert parse_contact(uri + "a") is None  # Asterisk never reports a longer one: refused, not cut


def test_the_token_never_appears_in_repr() -> None:
    binding = parse_contact(f"sip:6001@192.0.2.10;pn-provider=apns;pn-prid={APNS_TOKEN}")
    assert binding is not None
    assert APNS_TOKEN not in repr(binding) and APNS_TOKEN not in str(binding)
    assert binding.masked_token == "a1b2...c3d4" == mask_token(APNS_TOKEN)
    assert mask_token("short") == "****"


@given(st.text(max_size=600))
def test_any_text_is_parsed_without_error(text: str) -> None:
    binding = parse_contact(text)
    assert binding is None or len(text) <= MAX_URI_CHARS


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200))
def test_any_printable_value_round_trips_through_percent_encoding(value: str) -> None:
    params = uri_params(f"sip:a@b;x={quote(value, safe='')}")
    assert params == {"x": value}
