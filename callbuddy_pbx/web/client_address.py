"""Who a request really comes from, for login throttling and logs.

Behind a reverse proxy every request arrives from the proxy's address, so counting failed logins per address
would let one guesser lock out everyone. `X-Forwarded-For` names the client, but anyone can send that header:
it is believed only when the request came from a configured trusted proxy, and then only as far as the chain of
trusted proxies reaches (read from the right, where each proxy appended the address it saw).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


def client_address(remote: str | None, forwarded_for: Iterable[str], proxies: Sequence[Network]) -> str:
    """The client's address: `remote` itself unless it is a trusted proxy; then the right-most address of the
    X-Forwarded-For chain that is not a trusted proxy (a malformed entry ends the chain at the hop before it)."""
    peer = _address(remote or "")
    if peer is None:
        return remote or "unknown"
    if not proxies or not _trusted(peer, proxies):
        return str(peer)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR ranges (`10.0.0.0/8`); ValueError names the first that is neither."""
    return tuple(ipaddress.ip_network(text.strip(), strict=False) for text in texts)
