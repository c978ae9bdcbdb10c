"""What `render` gives a call back: [callbuddy-callback] sends the answered desk into [from-internal] with the
caller's E.164 number (the desk's own caller ID, numbering plan, limits and trunk: an ordinary desk call), and the
AMI user may send Originate (`originate`, never `system`)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.callback import CALLBACK_CONTEXT, originate_fields
from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.config import Config, load_config
from tests.test_render_routing import context

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = ["salon", "clinic", "installer"]


def _config(case: str) -> Config:
    return load_config(GOLDEN / case / "callbuddy.yaml")


@pytest.mark.parametrize("case", CASES)
def test_the_call_back_context_hands_the_number_to_the_desks_outbound_path(case: str) -> None:
    config = _config(case)
    text = render_all(config)["extensions_callbuddy.conf"]
    lines = [line for line in context(text, CALLBACK_CONTEXT) if not line.startswith(";")]
    assert lines == [
        "exten => _+X.,1,NoOp(CallBuddy: call back from phone ${CHANNEL(endpoint)})",
        " same => n,Set(CALLERID(all)=${PJSIP_ENDPOINT(${CHANNEL(endpoint)},callerid)})",
        " same => n,Goto(from-internal,${EXTEN},1)",
    ]
    # The originated desk lands where desks place their calls (pjsip.conf's endpoint context), and any number goes
    # through the calling phone's settings and its business's plan there: nothing of the outbound rules is skipped.
    assert "context = from-internal" in render_all(config)["pjsip.conf"]
    internal = context(text, "from-internal")
    assert "exten => _[0-9+].,1,Gosub(callbuddy-caller,s,1)" in internal
    assert not any("Dial(" in line for line in context(text, CALLBACK_CONTEXT))


@pytest.mark.parametrize("case", CASES)
def test_every_plan_takes_an_e164_number_as_the_call_back_dials_it(case: str) -> None:
    """The Originate's Exten is +<digits>; each rendered plan has a rule for it (national or international)."""
    config = _config(case)
    text = render_all(config)["extensions_callbuddy.conf"]
    plans = re.findall(r"^\[(callbuddy-dial-\w+)\]$", text, flags=re.M)
    assert plans
    for plan in plans:
        assert any(line.startswith("exten => _+X.,1,") for line in context(text, plan)), plan


def test_the_originate_names_the_rendered_context() -> None:
    fields = originate_fields("100", "+15557654321", "callback-1")
    text = render_all(_config("salon"))["extensions_callbuddy.conf"]
    assert f"[{fields['Context']}]" in text
    assert re.fullmatch(r"\+[0-9]{2,}", fields["Exten"])  # what `_+X.` matches: + and at least two digits


def test_no_call_back_context_without_a_trunk() -> None:
    config = _config("salon")
    bare = dataclasses.replace(config, pbx=dataclasses.replace(config.pbx, trunks=()))
    assert f"[{CALLBACK_CONTEXT}]" not in render_all(bare)["extensions_callbuddy.conf"]


@pytest.mark.parametrize("case", CASES)
def test_the_ami_user_may_originate_but_never_system(case: str) -> None:
    text = render_all(_config(case))["manager.conf"]
    (write,) = re.findall(r"^write\s*=\s*(.+)$", text, flags=re.M)
    classes = {item.strip() for item in write.split(",")}
    assert "originate" in classes and "system" not in classes and "all" not in classes
