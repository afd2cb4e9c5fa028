"""What the bundle's ELF files need from the system: the sonames they link that the bundle does not
carry, and the newest glibc symbol version any of them uses. build_deb turns both into Depends.

Reads ``readelf -d`` (NEEDED entries) and ``objdump -T`` (versioned dynamic symbols), from binutils.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# The sonames glibc itself provides: they come with libc6, whose minimum version is computed.
GLIBC_SONAMES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libutil.so.1",
        "libresolv.so.2",
        "libanl.so.1",
        "ld-linux-x86-64.so.2",
    }
)
_GLIBC_VERSION = re.compile(r"\bGLIBC_(\d+(?:\.\d+)+)\b")
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")


def is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def elf_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if is_elf(path))


def needed(path: Path) -> list[str]:
    shown = subprocess.run(["readelf", "-d", "--wide", str(path)], capture_output=True, text=True, check=True)
    return _NEEDED.findall(shown.stdout)


def glibc_versions(path: Path) -> set[tuple[int, ...]]:
    shown = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True, check=True)
    return {tuple(int(part) for part in found.split(".")) for found in _GLIBC_VERSION.findall(shown.stdout)}


@dataclass
class SystemNeeds:
    sonames: dict[str, list[str]] = field(default_factory=dict)  # soname -> the bundled files that link it
    glibc: tuple[int, ...] = (2, 2, 5)

    @property
    def glibc_text(self) -> str:
        return ".".join(str(part) for part in self.glibc)


def system_needs(bundle: Path) -> SystemNeeds:
    """The libraries the bundle links but does not carry (glibc's aside), and the glibc it needs."""
    files = elf_files(bundle)
    carried = {path.name for path in bundle.rglob("*") if path.is_file() or path.is_symlink()}
    found = SystemNeeds()
    for path in files:
        for soname in needed(path):
            if soname not in carried and soname not in GLIBC_SONAMES:
                found.sonames.setdefault(soname, []).append(str(path.relative_to(bundle)))
        found.glibc = max([found.glibc, *glibc_versions(path)])
    return found
