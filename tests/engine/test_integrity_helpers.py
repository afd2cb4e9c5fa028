"""ETag checks, URL lifetimes and expiry margins, redaction, and safe names."""

from __future__ import annotations

import hashlib
import logging

import pytest

from desktop_uploader.engine.api_client import url_lifetime
from desktop_uploader.engine.errors import IntegrityError
from desktop_uploader.engine.filenames import is_model_file, safe_basename
from desktop_uploader.engine.methods.multipart import EtagCheck, multipart_etag
from desktop_uploader.engine.methods.presigned_parts import expiry_margin
from desktop_uploader.engine.redact import RedactingFilter, redact
from desktop_uploader.engine.state import SavedPart


def test_etag_check_trusts_md5_stores_and_catches_corruption() -> None:
    check = EtagCheck()
    good = hashlib.md5(b"a").hexdigest()
    check.verify(1, good, f'"{good}"')
    assert check.trusted is True
    with pytest.raises(IntegrityError):
        check.verify(2, good, '"' + "0" * 32 + '"')


def test_etag_check_learns_that_a_store_does_not_use_md5s() -> None:
    check = EtagCheck()
    md5 = hashlib.md5(b"a").hexdigest()
    with pytest.raises(IntegrityError):  # first mismatch: could be damage, so send again
        check.verify(1, md5, '"' + "1" * 32 + '"')
    check.verify(1, md5, '"' + "2" * 32 + '"')  # the same bytes mismatch again: not MD5s here
    assert check.trusted is False
    check.verify(2, md5, "anything")
    other = EtagCheck()
    other.verify(1, md5, '"not-an-md5-at-all"')
    assert other.trusted is False


def test_multipart_etag_is_md5_of_md5s() -> None:
    parts = [SavedPart(2, hashlib.md5(b"b").hexdigest(), 1), SavedPart(1, hashlib.md5(b"a").hexdigest(), 1)]
    joined = hashlib.md5(b"a").digest() + hashlib.md5(b"b").digest()
    assert multipart_etag(parts) == hashlib.md5(joined).hexdigest() + "-2"
    assert multipart_etag([SavedPart(1, "minio-style", 1)]) is None


def test_url_lifetime_comes_from_the_url() -> None:
    assert url_lifetime("https://s3/x?X-Amz-Expires=900&X-Amz-Signature=a", 3600) == 900
    assert url_lifetime("https://s3/x?foo=1", 3600) == 3600
    assert expiry_margin(3600) == 60 and expiry_margin(2) == 0.5


def test_redaction_of_signatures_tokens_and_secrets() -> None:
    text = (
        "PUT http://h/b/k?uploadId=u&X-Amz-Credential=AK%2F2026&X-Amz-Signature=deadbeef "
        "Authorization: Bearer abc.def-ghi {'secret_key': 'hush'} token=xyz"
    )
    cleaned = redact(text)
    for secret in ("deadbeef", "abc.def-ghi", "hush", "xyz", "AK%2F2026"):
        assert secret not in cleaned
    assert "uploadId=u" in cleaned


def test_redacting_filter_covers_arguments_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "url %s", ("http://h?X-Amz-Signature=abc123",), None)
    try:
        raise ValueError("Bearer s3cr3t-token")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert "abc123" not in record.getMessage() and "s3cr3t-token" not in (record.exc_text or "")


@pytest.mark.parametrize(
    ("name", "model"), [("a.safetensors", True), ("A.CKPT", True), ("x.gguf", True), ("x.txt", False), ("x", False)]
)
def test_model_extensions(name: str, model: bool) -> None:
    assert is_model_file(name) is model


def test_safe_basename_never_escapes() -> None:
    for evil in ("../../x.bin", "..\\..\\x.bin", "/etc/x.bin", "a/../../b.bin", "x\x00y.bin"):
        assert "/" not in safe_basename(evil) and "\\" not in safe_basename(evil) and ".." not in safe_basename(evil)
