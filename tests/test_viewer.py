"""Who may see which business's calls, and callers' numbers in full or masked: the rules every dashboard page and
export reads from the `Viewer` the login put on the request.

An admin sees every business (calls that reached no business too) and full numbers. A business user sees only their
own businesses, and callers' full numbers (their own customers, to call back) unless the installer set
`mask_numbers: true` (read as `show_numbers=False`): then masked, country prefix and last two digits.
The expected masked forms are written out by hand, not computed by the code under test.
"""

from __future__ import annotations

import pytest

from callbuddy_pbx.config.users import WebUser
from callbuddy_pbx.web.viewer import ADMIN, BUSINESS, Viewer

GLOW, BOLT, OTHER = "Glow Salon", "Bolt Garage", "Sharp Cuts"
JANE = "+15557654321"
JANE_MASKED = "+155******21"  # what a business user with mask_numbers reads in place of Jane's number

# The users of a configuration; each test makes its viewers from them, as the login does for every request.
ADMIN_ENTRY = WebUser("root", "scrypt$x", ADMIN)
GLOW_ENTRY = WebUser("glow-owner", "scrypt$x", BUSINESS, (GLOW,))  # as a users file entry without number settings
MASKED_ENTRY = WebUser("glow-desk", "scrypt$x", BUSINESS, (GLOW,), show_numbers=False)  # `mask_numbers: true`
BOTH_ENTRY = WebUser("both-owner", "scrypt$x", BUSINESS, (GLOW, BOLT))


def test_the_viewer_is_the_user_who_logged_in() -> None:
    assert (Viewer.of(ADMIN_ENTRY).name, Viewer.of(ADMIN_ENTRY).role) == ("root", "admin")
    assert (Viewer.of(GLOW_ENTRY).name, Viewer.of(GLOW_ENTRY).role) == ("glow-owner", "business")
    assert Viewer.of(BOTH_ENTRY).businesses == (GLOW, BOLT)


def test_an_admin_sees_every_business_and_calls_that_reached_none() -> None:
    admin = Viewer.of(ADMIN_ENTRY)
    assert admin.is_admin and admin.scope is None  # queries are not limited to any business
    assert all(admin.may_see(business) for business in (GLOW, BOLT, OTHER, None))


def test_an_admin_sees_full_numbers_even_when_the_user_entry_says_otherwise() -> None:
    viewer = Viewer.of(WebUser("root", "scrypt$x", ADMIN, show_numbers=False))
    assert viewer.show_numbers and viewer.number(JANE) == JANE


def test_a_business_user_sees_only_their_business() -> None:
    glow_owner = Viewer.of(GLOW_ENTRY)
    assert not glow_owner.is_admin and glow_owner.scope == [GLOW]
    assert glow_owner.may_see(GLOW)
    assert not glow_owner.may_see(BOLT)
    assert not glow_owner.may_see(OTHER)


def test_calls_that_reached_no_business_are_for_admins_only() -> None:
    glow_owner, both_owner = Viewer.of(GLOW_ENTRY), Viewer.of(BOTH_ENTRY)
    assert not glow_owner.may_see(None)
    assert not both_owner.may_see(None)
    assert not both_owner.may_see("")  # an empty business name is no business of theirs either


def test_a_user_of_several_businesses_sees_each_of_them_and_no_other() -> None:
    both_owner = Viewer.of(BOTH_ENTRY)
    assert both_owner.scope == [GLOW, BOLT]
    assert both_owner.may_see(GLOW) and both_owner.may_see(BOLT)
    assert not both_owner.may_see(OTHER)


def test_a_business_user_sees_their_callers_full_numbers_by_default() -> None:
    for entry in (GLOW_ENTRY, BOTH_ENTRY):
        viewer = Viewer.of(entry)
        assert viewer.show_numbers and viewer.number(JANE) == JANE  # to call them back
    assert Viewer.of(GLOW_ENTRY).scope == [GLOW]  # full numbers, still only their business


def test_a_business_user_with_mask_numbers_sees_them_masked() -> None:
    desk = Viewer.of(MASKED_ENTRY)
    shown = desk.number(JANE)
    assert shown == JANE_MASKED
    assert "7654" not in shown  # the subscriber's digits stay hidden
    assert desk.number("+442079460018") == "+442*******18"


@pytest.mark.parametrize("user", [ADMIN_ENTRY, MASKED_ENTRY, BOTH_ENTRY], ids=["admin", "masked", "full"])
@pytest.mark.parametrize("number", [None, ""])
def test_a_call_without_a_number_reads_withheld_for_everyone(user: WebUser, number: str | None) -> None:
    assert Viewer.of(user).number(number) == "withheld"
