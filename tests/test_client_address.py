"""The client behind a request: X-Forwarded-For is believed only from trusted proxies, and only as far as they go."""

from __future__ import annotations

import pytest

from callbuddy_pbx.config import load_config
from callbuddy_pbx.web.client_address import client_address, parse_networks
from tests.config_files import problems_of

PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1", "::1"])


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),  # not from a proxy: the header is anyone's word
        ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy that said nothing
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        ("10.1.2.3", ["192.0.2.1, 198.51.100.7, 10.9.9.9"], "198.51.100.7"),  # made-up left part ignored
        ("10.1.2.3", ["192.0.2.1", "198.51.100.7"], "198.51.100.7"),  # the header sent twice: one list
        ("10.1.2.3", ["not-an-ip, 10.9.9.9"], "10.9.9.9"),  # garbage ends the chain at the hop before it
        ("10.1.2.3", ["10.9.9.8, 10.9.9.9"], "10.9.9.8"),  # every hop a proxy: the farthest one
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("127.0.0.1", [" 198.51.100.7 "], "198.51.100.7"),
        (None, ["198.51.100.7"], "unknown"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    remote: str | None, forwarded: list[str], client: str
) -> None:
    assert client_address(remote, forwarded, PROXIES) == client


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"


def test_trusted_proxies_are_read_from_the_config(write) -> None:
    config = load_config(write("web:\n  trusted_proxies: [127.0.0.1, 10.0.0.0/8, '2001:db8::/32']\n"))
    assert config.web.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32")
    (problem,) = problems_of(write("web:\n  trusted_proxies:\n    - 10.0.0.300\n"))
    assert ":3: web.trusted_proxies[0]: '10.0.0.300' is not an IP address or a CIDR range" in problem
