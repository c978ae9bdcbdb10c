"""Who this process is, for the rows it claims on a database several CallBuddy instances share (issue 16).

An outbox row being sent names its claimer, so another instance can tell a send in flight (its owner's lease still
runs) from one whose owner died (the lease ran out). The name is stable for the life of the process and never
reused: the host and pid say where to look in a log, the random part tells a restarted process (the pid may come
round again, a container's pid is often 1) from the one before it.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket

MAX_INSTANCE_CHARS = 120  # the column holds what we made, bounded all the same (a host name can be long)


def new_instance_id() -> str:
    """A fresh identity: host, pid and 48 random bits."""
    host = socket.gethostname() or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(6)}"[-MAX_INSTANCE_CHARS:]


@functools.cache
def this_process() -> str:
    """This process's identity: made once, the same for every store it opens."""
    return new_instance_id()
