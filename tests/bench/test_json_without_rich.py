"""An upload for a script (``--json``) never imports rich: it shows no bars, so it pays nothing for them.

rich's console and progress modules were ~70 ms of every upload's start on the benchmark machine
(docs/benchmarks.md, "Per-file overhead"). The same upload for a person still shows them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from desktop_uploader.sandbox.info import SandboxInfo
from tests.support.storage import object_sha256, open_multipart_uploads

# Reports at the very end of the process (the first atexit handler registered runs last) whether rich was loaded.
PROBE = (
    "import atexit, json, runpy, sys\n"
    "atexit.register(lambda: print(json.dumps({'rich': 'rich' in sys.modules}), file=sys.stderr))\n"
    "sys.argv = ['desktop-uploader', *sys.argv[1:]]\n"
    "runpy.run_module('desktop_uploader', run_name='__main__', alter_sys=True)\n"
)


def _upload(sandbox: SandboxInfo, home: Path, path: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    env = {**os.environ, "DESKTOP_UPLOADER_HOME": str(home)}
    env.pop("DESKTOP_UPLOADER_TOKEN", None)
    argv = [sys.executable, "-c", PROBE, "upload", str(path), f"--server={sandbox.api_url}", f"--token={sandbox.token}"]
    done = subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=180, env=env, check=False)
    return done.returncode, done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_an_upload_with_json_output_never_imports_rich(
    sandbox: SandboxInfo, s3: Any, make_file: Any, tmp_path: Path
) -> None:
    sample = make_file(3 << 20, name="lora.bin")
    code, out, probe = _upload(sandbox, tmp_path / "home", sample.path, "--json")
    assert code == 0, out
    [upload] = json.loads(out)["uploads"]
    assert upload["status"] == "completed"
    assert object_sha256(s3, sandbox.bucket, upload["s3Key"]) == sample.sha256
    assert open_multipart_uploads(s3, sandbox.bucket, upload["s3Key"]) == []
    assert probe["rich"] is False


def test_an_upload_for_a_person_still_shows_its_summary(
    sandbox: SandboxInfo, s3: Any, make_file: Any, tmp_path: Path
) -> None:
    sample = make_file(3 << 20, name="lora.bin")
    code, out, probe = _upload(sandbox, tmp_path / "home", sample.path)
    assert code == 0, out
    assert "1 of 1 uploaded" in out and "lora.bin" in out
    assert probe["rich"] is True
