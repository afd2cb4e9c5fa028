"""The CLI starts light: what an upload never needs is imported only by the command that does.

boto3 (direct-S3 uploads only) and pydantic (the ``serve`` command only) each cost every command
about 0.2 s and 24 MiB of resident memory, keyring (only when no token is given) 60 ms; on a 1 GiB
upload over a LAN that is a fifth of the time.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("boto3", "botocore", "pydantic", "fastapi", "uvicorn", "PySide6", "keyring")


def test_the_upload_command_does_not_import_the_server_stack_or_boto3() -> None:
    code = (
        "import sys\n"
        "import desktop_uploader.cli, desktop_uploader.cli.upload_cmd, desktop_uploader.connection\n"
        "import desktop_uploader.engine.manager\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
