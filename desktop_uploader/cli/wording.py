"""The engine's sentences as a terminal should say them.

The engine words its failures for the window ("Check them in Settings."), since that is where most
people meet them; a CLI audit typing flags was sent to a Settings window it never opened. Here each
such closing sentence becomes the flags that gave the value, with the app's saved settings as the
other place a value can come from. Only the endings are swapped: the rest is the engine's own words.
"""

from __future__ import annotations

from desktop_uploader.connection import SECRET_ENV

ENDINGS = {
    " Check them in Settings.": f" Check --access-key and {SECRET_ENV}, or what the app's Settings hold.",
    " Check the bucket name in Settings.": " Check --bucket, or the bucket in the app's Settings.",
}


def for_terminal(message: str) -> str:
    """``message`` with a Settings-window ending replaced by the flags to check."""
    for window, terminal in ENDINGS.items():
        if message.endswith(window):
            return message.removesuffix(window) + terminal
    return message
