"""What a saved change of settings does to uploads already under way, in one sentence.

Uploads start with the settings of that moment: their server, method, part size and parts at once
stay theirs until they end. Only the bandwidth limit, files at once and the app's own behaviour apply at
once. A busy-machine audit raised parts at once mid-upload, saw nothing change, and had no word that the
save had worked at all.
"""

from __future__ import annotations

import dataclasses

from desktop_uploader.engine.settings import Settings

# Read afresh by the app as it runs: a change to these reaches uploads already under way, or none needs to.
APPLIED_AT_ONCE = ("bandwidth_limit", "files_at_once", "notifications", "auto_start", "keep_awake", "minimize_to_tray")


def shapes_uploads(before: Settings, after: Settings) -> bool:
    """Whether ``after`` changes how an upload is sent or where it goes (not only what applies at once)."""
    same = {name: getattr(before, name) for name in APPLIED_AT_ONCE}
    return dataclasses.replace(after, **same) != before


def saved_sentence(before: Settings, after: Settings, under_way: int) -> str:
    """The status bar's word after Save, with ``under_way`` uploads sending now."""
    said = "Settings saved."
    if under_way and shapes_uploads(before, after):
        keep = "upload under way keeps" if under_way == 1 else f"{under_way} uploads under way keep"
        own = "it" if under_way == 1 else "they"
        said += f" The {keep} the settings {own} started with; uploads that start or resume from now use the new ones."
    if under_way and before.bandwidth_limit != after.bandwidth_limit:
        said += " The bandwidth limit applies at once, to every upload."
    return said
