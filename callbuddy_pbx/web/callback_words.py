"""A call back's progress in an owner's words (pure): what the thread and the call's page show while it goes on.

No "Originate", "channel" or "cause": the owner pressed "Call back" and wants to know whose phone rings and whether
the caller was reached. `phone` is the phone's configured name (e.g. "Front desk").
"""

from __future__ import annotations

from callbuddy_pbx.asterisk.callback import Stage

_WORDS: dict[Stage, str] = {
    Stage.STARTING: "Ringing {phone}…",
    Stage.RINGING_DESK: "Ringing {phone}… Pick it up to call the caller.",
    Stage.CALLING: "Calling the caller from {phone}…",
    Stage.CONNECTED: "{phone} is talking with the caller.",
    Stage.TALKED: "{phone} talked with the caller.",
    Stage.DESK_NO_ANSWER: "{phone} didn't answer, so the caller wasn't called.",
    Stage.DESK_BUSY: "{phone} was busy, so the caller wasn't called.",
    Stage.DESK_UNREACHABLE: "{phone} couldn't be reached. Is it switched on and connected?",
    Stage.DESK_HUNG_UP: "{phone} hung up before the caller answered.",
    Stage.CALLER_NO_ANSWER: "The caller didn't answer.",
    Stage.CALLER_BUSY: "The caller's line was busy.",
    Stage.CALLER_UNREACHABLE: "The call to the caller couldn't go through. Try again in a moment.",
    Stage.NOT_ALLOWED: "{phone} may not call this number.",
    Stage.REFUSED: "Call back isn't available. Your installer needs to update the phone system's settings.",
    Stage.UNAVAILABLE: "Call back isn't available right now: the phone system isn't connected.",
    Stage.LOST: "We lost track of this call back. Check {phone}.",
}

ALREADY_CALLING = "You are already calling this caller back."
NO_NUMBER = "This caller's number can't be called back."
NO_PHONE = "Choose one of your business's phones."
NOT_SET_UP = "Call back isn't available: no phones are set up for this business."


def progress_words(stage: Stage, phone: str) -> str:
    return _WORDS[stage].format(phone=phone)
