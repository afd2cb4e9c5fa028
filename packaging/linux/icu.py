"""Trim the ICU data Qt ships (libicudata, 32 MB) to what an English app needs: about 7 MB.

Qt Core links ICU, and ICU's data library carries every locale's names, currencies, units and
collation rules, the transliterators and the legacy character-set converters. The app's text is
English, and Qt uses ICU here for collation, time-zone names and IDNA: root and English data cover
those (other locales fall back to root's rules, as ICU does for any locale it lacks). Left out:
other locales' data, the transliterators, and the table-based legacy converters (Shift-JIS,
ISO-8859-15 and the like: the app reads and writes UTF-8 only; UTF-8/16/32, ASCII and Latin-1 are
built into ICU's code). The break-iterator dictionaries stay: the root rules refer to them.

The data is cut out of the library (its ``icudtNN_dat`` symbol), filtered with ``icupkg`` and
turned back into a library with the same soname by ``genccode`` and gcc (packages icu-devtools and
gcc; the build stops without them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

LOCALE = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]*)*$")
KEPT_BASES = {"root", "res_index", "pool"}


def dropped(item: str) -> bool:
    """Whether the data item ``tree/name.ext`` (as ``icupkg -l`` lists it) leaves the package."""
    base, _, ext = item.rsplit("/", 1)[-1].rpartition(".")
    if item.startswith("translit/") or ext == "cnv":
        return True
    return ext == "res" and base not in KEPT_BASES and bool(LOCALE.match(base)) and not base.startswith("en")


def _data_symbol(library: Path) -> tuple[str, int, int]:
    """The data symbol's name, file offset and size."""
    symbols = subprocess.run(["readelf", "-s", "--wide", str(library)], capture_output=True, text=True, check=True)
    found = re.search(
        r":\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+OBJECT\s+GLOBAL\s+\S+\s+(\d+)\s+(icudt\d+_dat)", symbols.stdout
    )
    if not found:
        raise SystemExit(f"{library} has no icudtNN_dat symbol: not an ICU data library?")
    address, size, section, name = found.groups()
    sections = subprocess.run(["readelf", "-S", "--wide", str(library)], capture_output=True, text=True, check=True)
    row = re.search(rf"\[\s*{section}\]\s+\S+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)", sections.stdout)
    if not row:
        raise SystemExit(f"{library}: section {section} not found")
    start, offset = int(row.group(1), 16), int(row.group(2), 16)
    return name, int(address, 16) - start + offset, int(size, 0)


def trim_icu_data(bundle: Path) -> int:
    """Replace the bundle's libicudata with the trimmed one; returns the bytes saved (0: none found)."""
    libraries = [path for path in bundle.rglob("libicudata.so.*") if not path.is_symlink()]
    missing = [tool for tool in ("icupkg", "genccode", "gcc", "strip", "readelf") if not shutil.which(tool)]
    if libraries and missing:
        raise SystemExit(f"trimming ICU's data needs {', '.join(missing)}: apt-get install icu-devtools gcc binutils")
    saved = 0
    for library in libraries:
        symbol, offset, size = _data_symbol(library)
        package = symbol.removesuffix("_dat") + "l"  # icudt73l: the item prefix icupkg takes from the file name
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            with open(library, "rb") as raw:
                raw.seek(offset)
                (work / f"{package}.dat").write_bytes(raw.read(size))
            listed = subprocess.run(
                ["icupkg", "-l", f"{package}.dat"], capture_output=True, text=True, check=True, cwd=work
            )
            (work / "remove.txt").write_text("\n".join(i for i in listed.stdout.split() if dropped(i)) + "\n")
            (work / "out").mkdir()
            subprocess.run(["icupkg", "-r", "remove.txt", f"{package}.dat", f"out/{package}.dat"], check=True, cwd=work)
            subprocess.run(
                ["genccode", "-e", symbol.removesuffix("_dat"), "-a", "gcc", f"{package}.dat"],
                check=True,
                cwd=work / "out",
                stdout=subprocess.DEVNULL,
            )
            trimmed = work / "out" / library.name
            subprocess.run(
                ["gcc", "-shared", "-nostdlib", f"-Wl,-soname,{library.name}", "-Wl,-z,noexecstack", "-o",
                 str(trimmed), f"{package}_dat.S"],
                check=True,
                cwd=work / "out",
            )  # fmt: skip
            subprocess.run(["strip", str(trimmed)], check=True)
            saved += library.stat().st_size - trimmed.stat().st_size
            shutil.copyfile(trimmed, library)
    return saved
