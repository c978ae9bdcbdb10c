"""The values the simulated PBX's events are made of: Asterisk 22's channel states, hangup causes, privilege classes
and variable lists, and the test PBX's own set-up (its queues, hinted desks and address)."""

from __future__ import annotations

UNKNOWN = "<unknown>"
STATE_DOWN, STATE_RING, STATE_RINGING, STATE_UP = 0, 4, 5, 6
STATE_DESC = {STATE_DOWN: "Down", STATE_RING: "Ring", STATE_RINGING: "Ringing", STATE_UP: "Up"}
CAUSE_TEXT = {
    0: "Unknown",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    127: "Interworking, unspecified",
}
PRESENTATION_ALLOWED = "0 (Presentation Allowed, Not Screened)"
OUTGOING_LINE = "(Outgoing Line)"

# Privilege classes, as Asterisk 22 sends them with `read = all`.
P_CALL = "call,all"
P_DIALPLAN = "dialplan,all"
P_AGENT = "agent,all"
P_SECURITY = "security,all"
P_REPORTING = "reporting,all"
P_CDR = "cdr,all"

# Variables Dial() clears when it starts (VarSet order as recorded).
DIAL_START_VARS = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
    "PROGRESSTIME",
    "PROGRESSTIME_MS",
)
QUEUE_START_VARS = ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS")
_JITTER = ";".join(
    f"{k}jitter=000.000000" for k in ("minrx", "maxrx", "avgrx", "stdevrx", "mintx", "maxtx", "avgtx", "stdevtx")
)
_LOST = ";".join(
    f"  {k}lost=000.000000" for k in ("minrx", "maxrx", "avgrx", "stdevrx", "mintx", "maxtx", "avgtx", "stdevtx")
)
_RTT = ";".join(f"     {k}rtt=000.000000" for k in ("min", "max", "avg", "stdev"))
_MES = ";".join(
    f"   {k}mes=000.000000" for k in ("minrx", "maxrx", "avgrx", "stdevrx", "mintx", "maxtx", "avgtx", "stdevtx")
)
RTP_QOS = (
    (
        "RTPAUDIOQOS",
        "ssrc={ssrc};themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;txcount={tx};rlp=0;rtt=0.000000;"
        "rxmes=0.000000;txmes=0.000000",
    ),
    ("RTPAUDIOQOSJITTER", _JITTER + ";"),
    ("RTPAUDIOQOSLOSS", _LOST + ";"),
    ("RTPAUDIOQOSRTT", _RTT + ";"),
    ("RTPAUDIOQOSMES", _MES + ";"),
)

# The test PBX's queues (they make QueueMemberStatus noise whenever a member's device changes state).
QUEUES = (
    ("callbuddy-hunt", "Local/{}@queue-members"),
    ("callbuddy-sales", "PJSIP/{}"),
    ("callbuddy-support", "Local/{}@queue-members/n"),
)
QUEUE_DESKS = frozenset({"100", "101"})
HINTED_DESKS = frozenset({"100", "101", "102"})
MEMBER_STATUS = {"idle": ("1", "0", "Idle", "NOT_INUSE"), "inuse": ("2", "1", "InUse", "INUSE")}
MEMBER_STATUS["ringing"] = ("6", "8", "Ringing", "RINGING")

LOCAL_IP = "127.0.0.1"
