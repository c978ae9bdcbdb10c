"""`python -m callbuddy_pbx.healthcheck [CONFIG]`: exit 0 when the running service's /healthz answers 200.

For a container's HEALTHCHECK (see the Dockerfile): the address and port come from the configuration's `web:`
(the file named on the command line, else $CALLBUDDY_CONFIG, else /etc/callbuddy/callbuddy.yaml), so a config that
moves the dashboard off 8080 is still checked. One line on stderr says why it is unhealthy.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from callbuddy_pbx.config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/callbuddy/callbuddy.yaml"
TIMEOUT_S = 4.0
_ANY_ADDRESS = ("", "0.0.0.0", "::")  # noqa: S104 (not a bind:) the service listens everywhere: ask it over loopback


def health_url(host: str, port: int) -> str:
    host = "127.0.0.1" if host in _ANY_ADDRESS else host
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else os.environ.get("CALLBUDDY_CONFIG") or DEFAULT_CONFIG
    try:
        web = load_config(path).web
    except ConfigError as exc:
        print(f"unhealthy: the configuration {path} cannot be read: {exc.problems[0]}", file=sys.stderr)
        return 1
    url = health_url(web.host, web.port)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (an http URL built above)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
