"""CSRF protection for the HTML form: a random token kept in the signed session cookie.

The token is rendered into the form as a hidden field; a POST must send it back. Another site
can make a browser post the form, but cannot read the page to learn the token. The session
cookie is ``SameSite=Lax`` and ``HttpOnly`` as a second line.
"""

from __future__ import annotations

import hmac
import secrets

from quart import session

FIELD = "csrf_token"
_SESSION_KEY = "csrf"


def csrf_token() -> str:
    """This session's token (created on first use); templates call it as ``csrf_token()``."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def csrf_valid(submitted: str | None) -> bool:
    """Whether a submitted form carried this session's token."""
    expected = session.get(_SESSION_KEY)
    return (
        isinstance(expected, str) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)
    )
