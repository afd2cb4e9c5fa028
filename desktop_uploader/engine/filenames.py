"""File names that are safe to put in an S3 key and on a ComfyUI volume, and which files are models.

The same rules run on both sides: the server sanitises whatever it is sent (it cannot trust the
client), and the app uses them to preview the stored name and to decide what a drop accepts.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath

DEFAULT_MODEL_EXTENSIONS: tuple[str, ...] = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx")
MAX_NAME_LENGTH = 150

# Characters that are separators or reserved somewhere (Windows, POSIX shells, URLs) become "_".
_RESERVED = re.compile(r'[\\/:*?"<>|\s]+')
# Bidi embedding/override/isolate marks can make "evil<U+202E>fdp.exe" display as "evilexe.pdf".
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def extension_of(name: str) -> str:
    return PurePath(name).suffix.lower()


def is_model_file(name: str, allowed: tuple[str, ...] = DEFAULT_MODEL_EXTENSIONS) -> bool:
    return extension_of(name) in {ext.lower() for ext in allowed}


def _visible(char: str) -> bool:
    # Cc: control (NUL, newlines, ESC); Cf: format (zero-width, bidi); Cs/Co/Cn: not text at all.
    return char not in _BIDI and unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Co", "Cn"}


def safe_basename(name: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """The last path component of ``name``, NFC-normalised, with nothing that could escape or mislead.

    Returns ``""`` when nothing usable is left (the caller refuses such names).
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if _visible(ch))
    name = _RESERVED.sub("_", name).strip("._ ")
    if not name or set(name) <= {"."}:
        return ""
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) < 20:
            name = stem[: max_length - len(ext) - 1].rstrip("._ ") + "." + ext
        else:
            name = name[:max_length]
    return name
