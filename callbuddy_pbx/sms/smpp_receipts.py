"""Delivery receipts as SMSCs send them, and the long texts whose parts they report on.

A receipt names a message by the id the SMSC gave in submit_sm_resp: in the `receipted_message_id` TLV, in the
`id:` field of the receipt text (`id:... sub:001 dlvrd:001 submit date:... done date:... stat:DELIVRD err:000
text:...`), or both. SMSCs differ: key case, missing fields, and some print the id in hex where submit_sm_resp had
it in decimal (or the other way round). The id is reported as given, so a receipt needs no state here; only the
parts of a long text are remembered, so that a receipt for any part reports on the whole text under its first id.
"""

from __future__ import annotations

import re
import string
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from callbuddy_pbx.sms.gateway import DeliveryState

MAX_DETAIL_CHARS = 64
MAX_ID_CHARS = 65  # receipted_message_id's size in SMPP 3.4
MAX_TEXT_START_CHARS = 40

# message_state TLV values (SMPP 3.4 section 5.2.28; 9 = SKIPPED is SMPP 5.0).
MESSAGE_STATES: dict[int, tuple[str, DeliveryState]] = {
    1: ("ENROUTE", DeliveryState.PENDING),
    2: ("DELIVERED", DeliveryState.DELIVERED),
    3: ("EXPIRED", DeliveryState.EXPIRED),
    4: ("DELETED", DeliveryState.FAILED),
    5: ("UNDELIVERABLE", DeliveryState.FAILED),
    6: ("ACCEPTED", DeliveryState.PENDING),
    7: ("UNKNOWN", DeliveryState.PENDING),
    8: ("REJECTED", DeliveryState.FAILED),
    9: ("SKIPPED", DeliveryState.FAILED),
}
# `stat:` words: the 7-letter forms of the SMPP appendix and the spelled-out forms some SMSCs use.
STAT_WORDS: dict[str, DeliveryState] = {
    "DELIVRD": DeliveryState.DELIVERED,
    "DELIVERED": DeliveryState.DELIVERED,
    "UNDELIV": DeliveryState.FAILED,
    "UNDELIVERABLE": DeliveryState.FAILED,
    "REJECTD": DeliveryState.FAILED,
    "REJECTED": DeliveryState.FAILED,
    "DELETED": DeliveryState.FAILED,
    "FAILED": DeliveryState.FAILED,
    "SKIPPED": DeliveryState.FAILED,
    "EXPIRED": DeliveryState.EXPIRED,
    "ACCEPTD": DeliveryState.PENDING,
    "ACCEPTED": DeliveryState.PENDING,
    "ENROUTE": DeliveryState.PENDING,
    "BUFFRED": DeliveryState.PENDING,
    "BUFFERED": DeliveryState.PENDING,
    "UNKNOWN": DeliveryState.PENDING,
}
_FINAL = (DeliveryState.FAILED, DeliveryState.EXPIRED)
# The free `text:` field comes last and may contain anything (even "stat:"), so it is cut off before parsing.
_TEXT_FIELD = re.compile(r"(?:^|\s)text:", re.IGNORECASE)
_FIELD = re.compile(r"(?:^|\s)(id|sub|dlvrd|submit date|done date|stat|err):[ \t]*(\S*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str  # as the SMSC wrote it
    state: DeliveryState
    error_code: str | None = None
    detail: str = ""


def parse_receipt_text(text: str) -> dict[str, str]:
    """The fields of a receipt text, keys lower-cased (`id`, `sub`, `dlvrd`, `submit date`, `done date`, `stat`,
    `err`); missing fields are absent. The first occurrence of a key wins."""
    cut = _TEXT_FIELD.search(text)
    head = text[: cut.start()] if cut else text
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(head):
        fields.setdefault(match.group(1).lower(), match.group(2))
    return fields


def text_field(text: str) -> str | None:
    """A receipt's `text:` field: the first characters (usually 20) of the text it reports on."""
    cut = _TEXT_FIELD.search(text)
    return text[cut.end() :].strip()[:MAX_TEXT_START_CHARS] or None if cut else None


def state_of_stat(word: str) -> DeliveryState:
    """A `stat:` word's state; an unknown word is not final (pending), whatever the SMSC meant."""
    return STAT_WORDS.get(word.strip().upper(), DeliveryState.PENDING)


def parse_receipt(
    text: str,
    receipted_message_id: str | None = None,
    message_state: int | None = None,
    network_error_code: bytes | None = None,
) -> Receipt | None:
    """A receipt from its TLVs and/or its text; None when neither names a message. The TLVs win when both are
    present: they are typed, the text is free-form."""
    fields = parse_receipt_text(text) if text else {}
    message_id = (receipted_message_id or "").strip() or fields.get("id", "").strip()
    if not message_id:
        return None
    stat = fields.get("stat", "")
    if message_state in MESSAGE_STATES:
        name, state = MESSAGE_STATES[message_state]
        detail = stat.upper() or name
    elif stat:
        state, detail = state_of_stat(stat), stat.upper()
    else:
        state, detail = DeliveryState.PENDING, "no status given"
    return Receipt(message_id[:MAX_ID_CHARS], state, _error_code(fields.get("err"), network_error_code), detail)


def _error_code(err: str | None, network_error_code: bytes | None) -> str | None:
    if err:
        return err[:16]
    if network_error_code and len(network_error_code) == 3:  # network type (1 byte), error code (2 bytes)
        return f"net:{network_error_code[0]}/{int.from_bytes(network_error_code[1:], 'big')}"
    return None


def id_keys(message_id: str) -> tuple[str, ...]:
    """The ways one id may be written: as given (case and leading zeros ignored), then its hex reading shown in
    decimal and its decimal reading shown in hex. Only used to find the parts of a long text."""
    exact = message_id.strip().lower().lstrip("0") or "0"
    keys = [exact]
    if all(ch in string.hexdigits for ch in exact) and len(exact) <= 32:
        keys.append(str(int(exact, 16)))
        if exact.isdigit():
            keys.append(format(int(exact), "x"))
    return tuple(dict.fromkeys(keys))


@dataclass(slots=True)
class _LongText:
    first_id: str
    states: dict[str, DeliveryState | None]  # part id (as submit_sm_resp gave it) -> its latest state
    done: bool = False


@dataclass(slots=True)
class LongTexts:
    """The part ids of recently sent long texts, bounded; receipts for their parts become one report per text."""

    capacity: int = 20_000
    _texts: OrderedDict[str, _LongText] = field(default_factory=OrderedDict)  # by first id, oldest first
    _exact: dict[str, tuple[_LongText, str]] = field(default_factory=dict)  # id key -> (text, part id)
    _other: dict[str, tuple[_LongText, str]] = field(default_factory=dict)  # hex/decimal readings

    def add(self, part_ids: Sequence[str]) -> None:
        text = _LongText(part_ids[0], dict.fromkeys(part_ids))
        self._texts[text.first_id] = text
        for part_id in part_ids:
            exact, *others = id_keys(part_id)
            self._exact[exact] = (text, part_id)
            for key in others:
                self._other[key] = (text, part_id)
        while len(self._texts) > self.capacity:
            self._forget(self._texts.popitem(last=False)[1])

    def knows(self, message_id: str) -> bool:
        return self._find(message_id) is not None

    def resolve(self, receipt: Receipt) -> Receipt | None:
        """What to report for a receipt: itself for an id not known here; for a part of a long text, the text's
        state under its first id (failed or expired as soon as one part is, delivered once all parts are, else
        pending); None for parts of a text already reported final."""
        found = self._find(receipt.message_id)
        if found is None:
            return receipt
        text, part_id = found
        if text.done:
            return None
        text.states[part_id] = receipt.state
        states = list(text.states.values())
        total = len(states)
        delivered = states.count(DeliveryState.DELIVERED)
        if receipt.state in _FINAL:
            state, detail = receipt.state, f"part {list(text.states).index(part_id) + 1}/{total}: {receipt.detail}"
        elif delivered == total:
            state, detail = DeliveryState.DELIVERED, f"{total}/{total} parts delivered"
        else:
            state, detail = DeliveryState.PENDING, f"{delivered}/{total} parts delivered"
        text.done = state is not DeliveryState.PENDING
        return Receipt(text.first_id, state, receipt.error_code, detail[:MAX_DETAIL_CHARS])

    def _find(self, message_id: str) -> tuple[_LongText, str] | None:
        exact, *others = id_keys(message_id)
        if exact in self._exact:
            return self._exact[exact]
        for key in others:
            if key in self._exact:
                return self._exact[key]
        return next((self._other[key] for key in (exact, *others) if key in self._other), None)

    def _forget(self, text: _LongText) -> None:
        for part_id in text.states:
            for key in id_keys(part_id):
                for index in (self._exact, self._other):
                    if key in index and index[key][0] is text:
                        del index[key]
