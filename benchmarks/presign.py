"""Server CPU to presign the 10,000 UploadPart URLs of one large ``start``: boto3 against our signer.

Both sign the same key and upload id at the same endpoint with static keys (no network: presigning
is local). Time is this process's CPU time (``time.process_time``), the best of ``--rounds``.
"before" is boto3's ``generate_presigned_url`` once per part, as the server did until issue 16;
"after" is ``Storage.presign_parts``, the server's own path today (``server/sigv4.py``), also with
a signed CRC32C on every part (what the app's ``sign`` asks for).

    .venv/bin/python -m benchmarks.presign [--parts 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from desktop_uploader.server.config import ServerConfig
from desktop_uploader.server.storage import Storage

ENDPOINT = "http://127.0.0.1:8333"
KEY = "loras/alice/alice_1764390000000_a-large-model.safetensors"
UPLOAD_ID = "b3J7c2VhZHdlZWQtdXBsb2FkLWlkfQ"
CRC = base64.b64encode(b"\x12\x34\x56\x78").decode()


def _cpu(work: Callable[[], Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    numbers = range(1, args.parts + 1)

    client = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )

    def with_boto3() -> None:
        for n in numbers:
            params = {"Bucket": "models", "Key": KEY, "UploadId": UPLOAD_ID, "PartNumber": n}
            client.generate_presigned_url("upload_part", Params=params, ExpiresIn=3600)

    with tempfile.TemporaryDirectory() as scratch:
        storage = Storage(
            ServerConfig(
                bucket="models",
                s3_endpoint=ENDPOINT,
                s3_access_key="AKIDEXAMPLE",
                s3_secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                tokens_file=Path(scratch) / "tokens.json",
                spool_dir=Path(scratch) / "spool",
            )
        )
        digests = {n: ("ChecksumCRC32C", CRC) for n in numbers}
        after = _cpu(lambda: storage.presign_parts(KEY, UPLOAD_ID, numbers, 3600), args.rounds)
        after_crc = _cpu(lambda: storage.presign_parts(KEY, UPLOAD_ID, numbers, 3600, digests), args.rounds)
    before = _cpu(with_boto3, min(args.rounds, 2))
    print(f"{args.parts:,} UploadPart URLs, server CPU seconds (best of {args.rounds}):")
    print(f"  before  boto3 generate_presigned_url per part  {before:8.3f} s")
    print(f"  after   Storage.presign_parts (sigv4.py)        {after:8.3f} s")
    print(f"  after   … with a signed CRC32C on every part   {after_crc:8.3f} s")
    print(f"  speed-up  {before / after:.0f}x")


if __name__ == "__main__":
    main()
