"""Naming the server's unfinished uploads, and the plans their stored parts can fit."""

from __future__ import annotations

from desktop_uploader.engine.api_client import RemotePart, seed_capabilities
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.methods.adopt import plan_of
from desktop_uploader.engine.server_uploads import name_from_key
from desktop_uploader.engine.settings import Settings

CAPS = seed_capabilities(Settings())


def test_the_file_name_comes_from_the_key_as_the_api_defines_it_and_never_crashes() -> None:
    assert name_from_key("loras/user_1/user_1_1700000000000_my_model.safetensors") == "my_model.safetensors"
    assert name_from_key("loras/bob/bob_1700000000000_a.ckpt") == "a.ckpt"
    assert name_from_key("loras/bob/alice_1700000000000_a.ckpt") == "alice_1700000000000_a.ckpt"
    assert name_from_key("loras/bob/bob_notmillis_a.ckpt") == "bob_notmillis_a.ckpt"
    assert name_from_key("loras/bob/bob_1700000000000_") == "bob_1700000000000_"
    assert name_from_key("plain.bin") == "plain.bin"
    assert name_from_key("folder/") == "folder/"
    assert name_from_key("") == ""


def test_stored_parts_must_fit_one_valid_plan_for_the_file() -> None:
    size = 23 * MiB
    fits = plan_of([RemotePart(1, "e", 5 * MiB), RemotePart(5, "e", 3 * MiB)], size, CAPS)
    assert fits is not None and (fits.part_size, fits.part_count) == (5 * MiB, 5)
    assert plan_of([RemotePart(2, "e", 8 * MiB)], size, CAPS) is not None
    assert plan_of([], size, CAPS) is None, "nothing stored: nothing to check against"
    assert plan_of([RemotePart(1, "e", 5 * MiB), RemotePart(2, "e", 4 * MiB)], size, CAPS) is None
    assert plan_of([RemotePart(6, "e", 5 * MiB)], size, CAPS) is None, "a part beyond the file's end"
    assert plan_of([RemotePart(1, "e", 1 * MiB)], size, CAPS) is None, "parts under S3's minimum"
    assert plan_of([RemotePart(1, "e", 5 * MiB)], 3 * MiB, CAPS) is None, "a part larger than the file"
    single = plan_of([RemotePart(1, "e", 3 * MiB)], 3 * MiB, CAPS)
    assert single is not None and single.part_count == 1
