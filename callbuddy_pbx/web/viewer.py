"""Who is looking at a dashboard page, and what that person may see.

The login middleware (web/auth.py) puts a `Viewer` on every dashboard request under `VIEWER_KEY`; pages and
exports read it and nothing else, so the rules "which businesses" and "full numbers or masked" live here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from callbuddy_pbx.config.users import WebUser
from callbuddy_pbx.phone import mask

ADMIN, BUSINESS = "admin", "business"


@dataclass(frozen=True, slots=True)
class Viewer:
    name: str
    role: str  # ADMIN | BUSINESS
    businesses: tuple[str, ...] = ()  # a business user's businesses (ignored for an admin)
    show_numbers: bool = False

    @classmethod
    def of(cls, user: WebUser) -> Viewer:
        """Full numbers for admins, and for business users unless their entry says `mask_numbers: true`: they are
        the business's own customers, whom the owner calls back."""
        admin = user.role == ADMIN
        return cls(user.name, user.role, () if admin else user.businesses, admin or user.show_numbers)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def scope(self) -> list[str] | None:
        """The businesses this viewer's queries are limited to (None = every business: an admin)."""
        return None if self.is_admin else list(self.businesses)

    def may_see(self, business: str | None) -> bool:
        """Calls without a business are an admin's only."""
        return self.is_admin or (business is not None and business in self.businesses)

    def number(self, number: str | None) -> str:
        """A caller's number as this viewer may see it ("withheld" when there is none)."""
        if not number:
            return "withheld"
        return number if self.show_numbers else mask(number)


VIEWER_KEY = web.RequestKey("viewer", Viewer)
CSRF_KEY = web.RequestKey("csrf_token", str)  # the session's CSRF token: every dashboard form posts it back
