"""With --json, stdout is JSON whatever happens: a CLI audit found it empty on a mistake or with nothing to do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from desktop_uploader.engine.limits import MiB
from tests.support.storage import object_sha256


def test_a_mistake_still_answers_json_on_stdout(cli: Any, tmp_path: Path) -> None:
    missing = cli("upload", str(tmp_path / "nowhere.ckpt"), "--json")
    assert missing.code == 2
    assert missing.json() == {"uploads": [], "error": f"{tmp_path / 'nowhere.ckpt'}: no such file or folder."}
    assert "no such file or folder" in missing.stderr, "people still read it on the terminal"

    flag = cli("upload", "--chunk-size", "abc", str(tmp_path / "x.ckpt"), "--json")
    assert flag.code == 2 and "See 'desktop-uploader upload --help'" in flag.stderr
    assert flag.json()["uploads"] == [] and "'abc' is not a size" in flag.json()["error"]


def test_nothing_to_resume_answers_an_empty_list(cli: Any) -> None:
    nothing = cli("resume", "--all", "--json")
    assert nothing.code == 0 and nothing.json() == {"uploads": []}


def documented_upload_fields() -> set[str]:
    """The per-file fields README.md promises for `upload --json`, read from the README itself."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    listed = readme.split("one entry per file: ", 1)[1].split(" (what this run sent", 1)[0]
    return set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", listed)))  # not the examples in brackets


def test_upload_json_has_the_fields_the_readme_promises_and_bytes_sent_is_this_runs(
    cli: Any, make_file: Any, s3: Any, sandbox: Any
) -> None:
    whole = make_file(6 * MiB, name="whole.safetensors")
    result = cli("upload", str(whole.path), "--json")
    assert result.code == 0, result.stderr
    [entry] = result.json()["uploads"]
    assert set(entry) == documented_upload_fields() and len(entry) == 15
    assert (entry["status"], entry["size"], entry["stored"], entry["bytesSent"]) == (
        "completed",
        6 * MiB,
        6 * MiB,
        6 * MiB,
    )
    assert object_sha256(s3, sandbox.bucket, entry["s3Key"]) == whole.sha256

    cut = make_file(6 * MiB, name="cut.safetensors")
    with cut.path.open("r+b") as handle:
        handle.truncate(3 * MiB)  # its header names 6 MiB of tensors: refused before it starts
    refused = cli("upload", str(cut.path), "--json")
    assert refused.code == 1
    [entry] = refused.json()["uploads"]
    assert set(entry) == {"file", "status", "message"} and entry["status"] == "failed"
    assert entry["message"].startswith("cut.safetensors was not uploaded because it looks damaged.")
