"""Addresses people type without their scheme, as a browser's address bar lets them.

They are refused, never changed behind the person's back (a saved address is what was typed), but the
sentence offers the whole address they most likely meant: a Next.js audit typed ``127.0.0.1:3000`` and
was told only that it must start with http:// or https://.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOCAL_SUFFIXES = (".local", ".lan", ".internal", ".home.arpa")


def likely_address(typed: str) -> str | None:
    """``typed`` with the scheme a browser would give it (http:// on this computer or a local network), or None
    when it doesn't look like a host name at all."""
    bare = typed.strip()
    if not bare or "://" in bare or any(c.isspace() for c in bare):
        return None
    try:
        host = urlsplit("//" + bare).hostname or ""
    except ValueError:
        return None
    if "." not in host and host != "localhost":
        return None
    try:
        local = host == "localhost" or not ipaddress.ip_address(host).is_global
    except ValueError:
        local = host.endswith(LOCAL_SUFFIXES)
    return ("http://" if local else "https://") + bare


def scheme_missing(subject: str, typed: str) -> str:
    """The sentence for ``typed``, which lacks http:// or https://: "The address must start with …"."""
    guess = likely_address(typed)
    if guess:
        return f"{subject} must start with http:// or https://: did you mean {guess}?"
    return f"{subject} must start with http:// or https://; got {typed.strip()!r}."
