"""boto3 ``upload_file`` with the default TransferConfig: what a Python user would write.

Usage: python -m benchmarks.clients.boto3_upload FILE|DIR ENDPOINT BUCKET KEY
Credentials come from the environment, like any boto3 script. Path-style addressing is the only
change from a bare client: the local stores have no virtual-host DNS. A folder is sent one file
after another under ``KEY`` (which then ends with ``/``): the loop a script would write.
"""

from __future__ import annotations

import sys
from pathlib import Path

import boto3
from botocore.config import Config


def main() -> int:
    path, endpoint, bucket, key = sys.argv[1:5]
    client = boto3.client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
    source = Path(path)
    if source.is_dir():
        for item in sorted(p for p in source.iterdir() if p.is_file()):
            client.upload_file(str(item), bucket, key + item.name)
    else:
        client.upload_file(path, bucket, key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
