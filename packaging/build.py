#!/usr/bin/env python3
"""Build the installable app: ``make package``.

1. Compress SeaweedFS's ``weed`` (the sandbox's storage server) with xz: 153 MB becomes 34 MB, and
   the app unpacks it into the user's data dir the first time someone tries the sandbox.
2. Freeze the app with PyInstaller (one folder; see desktop-uploader.spec for what is left out);
   on Linux, trim Qt's ICU data to root and English (packaging/linux/icu.py).
3. On Linux, wrap it in a .deb (packaging/linux/build_deb.py). Windows and macOS installers are
   built on their own systems by .github/workflows/package.yml.

Prints the sizes, which README.md quotes.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from platformdirs import user_cache_dir

ROOT = Path(__file__).resolve().parents[1]


def weed_binary() -> Path:
    exe = "weed.exe" if os.name == "nt" else "weed"
    path = Path(sysconfig.get_path("scripts")) / exe
    if not path.is_file():
        sys.exit(f"{path} is missing: install the app's dependencies (pip install -e .) first")
    return path


def compress_weed(build: Path) -> Path:
    """build/weed.xz, from a cache outside the checkout when this very binary was compressed before.

    xz -6 on 153 MB takes one to several minutes and gives the same bytes every time, so the result is
    kept in the user's cache dir, keyed by the binary's digest: a fresh clone on the same machine (a CI
    run, a second checkout) reuses it, and a new SeaweedFS release misses the cache as it should.
    """
    source = weed_binary()
    target = build / "weed.xz"
    build.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(source, "rb") as raw:
        for block in iter(lambda: raw.read(8 * 1024 * 1024), b""):
            digest.update(block)
    cached = Path(user_cache_dir("desktop-uploader-build")) / f"{source.name}-{digest.hexdigest()[:24]}.xz"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        print(f"compressing {source.name} ({source.stat().st_size / 1e6:.0f} MB) …", flush=True)
        if shutil.which("xz"):  # multi-threaded: a quarter of the time of Python's lzma
            with open(partial, "wb") as packed:
                subprocess.run(["xz", "-6", "-T0", "-c", str(source)], stdout=packed, check=True)
        else:
            with open(source, "rb") as raw, lzma.open(partial, "wb", preset=6) as packed:
                shutil.copyfileobj(raw, packed, 8 * 1024 * 1024)
        partial.replace(cached)
    shutil.copyfile(cached, target)
    return target


def size_of(path: Path) -> int:
    """Bytes on disk as an installer counts them: a symlink is the link, not its target again."""
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_symlink() or f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the bundle and installers go")
    parser.add_argument("--no-deb", action="store_true", help="only the PyInstaller bundle")
    args = parser.parse_args()
    build = ROOT / "build"
    began = time.monotonic()
    compress_weed(build)
    print(f"step: weed compressed in {time.monotonic() - began:.0f} s", flush=True)
    began = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(args.out),
            "--workpath",
            str(build / "pyi"),
            str(ROOT / "packaging" / "desktop-uploader.spec"),
        ],
        check=True,
        cwd=ROOT,
    )
    bundle = args.out / "desktop-uploader"
    print(f"step: frozen by PyInstaller in {time.monotonic() - began:.0f} s", flush=True)
    sys.path.insert(0, str(ROOT / "packaging"))
    if sys.platform.startswith("linux"):
        sys.path.insert(0, str(ROOT / "packaging" / "linux"))
        from icu import trim_icu_data

        print(f"step: ICU data trimmed by {trim_icu_data(bundle) / 1e6:.1f} MB (packaging/linux/icu.py)", flush=True)
    if not sys.platform.startswith("linux"):  # the .deb has /usr/share/doc/desktop-uploader/copyright
        from bundle_licences import write_licences

        app = args.out / "Desktop Uploader.app" / "Contents" / "Resources"
        print(f"step: licences in {write_licences(app if sys.platform == 'darwin' else bundle)}", flush=True)
    print(f"bundle: {bundle} ({size_of(bundle) / 1e6:.1f} MB)")
    if sys.platform.startswith("linux") and not args.no_deb:
        from build_deb import build_deb

        began = time.monotonic()
        deb = build_deb(bundle, args.out)
        print(f"step: packaged by dpkg-deb in {time.monotonic() - began:.0f} s", flush=True)
        print(f"deb: {deb} ({deb.stat().st_size / 1e6:.1f} MB to download)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
