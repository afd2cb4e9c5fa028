"""File names that are safe to put in an S3 key and on a ComfyUI volume, and which files are models.

The same rules run on both sides: the server sanitises whatever it is sent (it cannot trust the
client), and the app uses them to preview the stored name and to decide what a drop accepts.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath

DEFAULT_MODEL_EXTENSIONS: tuple[str, ...] = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx")
# In UTF-8 bytes: the server puts "{user}_{millis}_" in front, and a volume's filesystem (ext4, SeaweedFS's
# filer) takes 255 bytes a name. Counted in characters, 76 CJK ones passed the cap and failed at the very
# end of the upload, "entry name too long", on every try (an odd-inputs audit).
MAX_NAME_BYTES = 150
# What a name that is only its type ("_.safetensors", ".ckpt") is stored as: still a model, with its type.
NAMELESS_STEM = "unnamed"

# Characters that are separators or reserved somewhere (Windows, POSIX shells, URLs) become "_".
_RESERVED = re.compile(r'[\\/:*?"<>|\s]+')
# Bidi embedding/override/isolate marks can make "evil<U+202E>fdp.exe" display as "evilexe.pdf".
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def extension_of(name: str) -> str:
    return PurePath(name).suffix.lower()


def is_model_file(name: str, allowed: tuple[str, ...] = DEFAULT_MODEL_EXTENSIONS) -> bool:
    return extension_of(name) in {ext.lower() for ext in allowed}


def odd_type_letters(name: str) -> str | None:
    """Why the type of ``name`` is not the model type it looks like, or None: ".safetensоrs" with a Cyrillic
    "о" was refused as a type not accepted, which read as the very type allowed (an odd-inputs audit)."""
    ext = extension_of(name)
    odd = [char for char in dict.fromkeys(ext) if ord(char) > 127]
    if not odd:
        return None
    letters = ", ".join(f"{shown(char)} ({unicodedata.name(char, 'unnamed').lower()})" for char in odd)
    return (
        f"Its type, {shown(ext)}, has characters that only look like plain letters: {letters}. "
        "Rename the file with plain letters to upload it as a model."
    )


def _visible(char: str) -> bool:
    # Cc: control (NUL, newlines, ESC); Cf: format (zero-width, bidi); Cs/Co/Cn: not text at all.
    return char not in _BIDI and unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Co", "Cn"}


def safe_basename(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """The last path component of ``name``, NFC-normalised, with nothing that could escape or mislead,
    at most ``max_bytes`` long in UTF-8, its type kept.

    Returns ``""`` when nothing usable is left (the caller refuses such names).
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if _visible(ch))
    stem, ext = _stem_and_type(_RESERVED.sub("_", name))
    if not ext:
        return _cut(stem, max_bytes)
    # Stripped apart, so "_.safetensors" keeps its type: stripped whole it became "safetensors", refused
    # for having no type at all (an odd-inputs audit).
    room = max_bytes - len(ext.encode()) - 1
    return f"{_cut(stem or NAMELESS_STEM, room) or NAMELESS_STEM}.{ext}"


def _stem_and_type(name: str) -> tuple[str, str]:
    """``name`` cut at its last dot: the name without leading dots, spaces and underscores (hidden files),
    the type without trailing ones (Windows' trailing dots); no type when what follows the dot isn't one."""
    stem, dot, ext = name.rpartition(".")
    ext = ext.strip("._ ")
    if not dot or not ext or len(ext) >= 20:
        return name.strip("._ "), ""
    return stem.lstrip("._ "), ext


def _cut(text: str, max_bytes: int) -> str:
    """``text`` cut to ``max_bytes`` of UTF-8 at a character's edge, without a dot or space left at its end."""
    if len(text.encode()) <= max_bytes:
        return text
    return text.encode()[:max_bytes].decode(errors="ignore").rstrip("._ ")


_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    """``text`` as a person may safely see it: nothing in it can act on a terminal or hide what it is.

    A byte that was not valid UTF-8 (kept by Python as a lone surrogate) becomes ``\\xNN``, control
    characters (ESC, BEL, CR…) ``\\xNN`` or ``\\r``/``\\n``/``\\t``, bidi marks and line separators
    ``\\uNNNN``. Everything else, including accents and other scripts, is left as it is.
    """
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char in _NAMED_CONTROLS:
            out.append(_NAMED_CONTROLS[char])
        elif unicodedata.category(char) == "Cc":
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        elif char in _BIDI or unicodedata.category(char) in {"Cs", "Zl", "Zp"}:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def is_text(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (Linux allows them): it can't be sent or stored."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
