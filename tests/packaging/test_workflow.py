"""The packaging workflow (.github/workflows/package.yml), read as GitHub would: no network, no runner.

What it checks is what went wrong before (issue 17): retired runner images, Node 20 actions, a Linux
build whose glibc minimum followed the runner, a smoke test on the machine that built the package,
macOS signing with no certificate in any keychain, and tags that published nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "package.yml"
# The first major of each action that runs on Node 24.
NODE24 = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
}
CURRENT_RUNNERS = {"ubuntu-24.04", "macos-15", "windows-2025"}


@pytest.fixture(scope="module")
def jobs() -> dict[str, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["push"]["tags"] == ["v*"]
    return dict(workflow["jobs"])


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_every_job_runs_on_a_current_image_with_node_24_actions(jobs: dict[str, Any]) -> None:
    for name, job in jobs.items():
        assert job["runs-on"] in CURRENT_RUNNERS, f"{name} runs on {job['runs-on']}"
        for step in job["steps"]:
            if "uses" in step:
                action, _, version = step["uses"].partition("@")
                assert action in NODE24, f"{name} uses {action}, which this test does not know"
                assert int(version.lstrip("v").split(".")[0]) >= NODE24[action], f"{name}: {step['uses']}"


def test_the_linux_package_is_built_and_smoke_tested_in_separate_debian_12_containers(jobs: dict[str, Any]) -> None:
    build, smoke = jobs["linux"], jobs["linux-smoke"]
    assert build["container"] == "debian:bookworm"
    assert "packaging/build.py" in steps_text(build)
    assert "lintian --fail-on error" in steps_text(build)
    # The smoke test is another job, so another fresh container: only the .deb and its Depends.
    assert smoke["container"] == "debian:bookworm" and smoke["needs"] == "linux"
    text = steps_text(smoke)
    assert "apt-get install -y ./desktop-uploader_" in text
    assert "pip" not in text and "packaging/build.py" not in text
    assert "not found" in text and "--self-test" in text


def test_macos_imports_the_certificate_and_notarizes_only_with_both_secrets(jobs: dict[str, Any]) -> None:
    macos = jobs["macos"]
    steps = {step.get("name", step.get("uses", "")): step for step in macos["steps"]}
    imported = next(step for name, step in steps.items() if name.startswith("Import the signing certificate"))
    assert "MACOS_CERTIFICATE" in imported["if"]
    for command in ("security create-keychain", "security import", "set-key-partition-list", "list-keychains"):
        assert command in imported["run"]
    notarize = steps["Notarize and staple"]
    assert "MACOS_CERTIFICATE" in notarize["if"] and "APPLE_APP_PASSWORD" in notarize["if"]
    script = (ROOT / "packaging/macos/build-dmg.sh").read_text()
    commands = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in commands if "--deep" in line], "sign inside-out, not with codesign --deep"
    assert re.search(r"for attempt in .*\n.*hdiutil create", script), "hdiutil create needs its retry"


def test_a_tag_is_checked_against_the_version_and_publishes_a_release(jobs: dict[str, Any]) -> None:
    check = steps_text(jobs["version"])
    assert "__version__" in check and '"$GITHUB_REF_NAME" != "v$version"' in check
    for name in ("linux", "windows", "macos"):
        assert "version" in jobs[name]["needs"]
    release = jobs["release"]
    assert release["if"] == "github.ref_type == 'tag'"
    assert set(release["needs"]) >= {"version", "linux", "linux-smoke", "windows", "macos"}
    assert release["permissions"] == {"contents": "write"}
    assert "gh release create" in steps_text(release)


def test_windows_uses_an_inno_setup_that_knows_x64compatible(jobs: dict[str, Any]) -> None:
    assert "[6.3," in steps_text(jobs["windows"])
    assert "x64compatible" in (ROOT / "packaging/windows/desktop-uploader.iss").read_text()
