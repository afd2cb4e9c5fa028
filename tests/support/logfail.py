"""Fail any test that logs an unexpected WARNING or ERROR, as qutebrowser's ``logfail`` does.

The engine turns a crash in a listener, or any other "unexpected" path, into a log record and carries
on, so a test could pass while the code under it logged a crash. This handler sits on the root logger
for each test: its setup, its call and its teardown. It collects every record at WARNING or above,
from any thread, and the test ends in an error that lists those it did not expect.

A test that expects such a record says so, with a regular expression matched against
``"<LEVEL> <logger name>: <message>"``::

    @pytest.mark.allow_log(r"^WARNING desktop_uploader\\.server\\.storage: S3 \\w+ failed")

The usual expectations of a test that injects faults are named below (all at WARNING: an ERROR, such as
a listener's crash, is never among them).

``LOGFAIL_REPORT=<file>`` appends the records to that file instead of failing, to survey a whole run.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterator

import pytest

MARKER = "allow_log"

# A part or an API call failed and is tried again.
RETRIED = (
    r"^WARNING desktop_uploader\.engine\.methods\.\w+: .* failed \(attempt \d+/\d+\), retrying in [\d.]+ s: ",
    r"^WARNING desktop_uploader\.engine\.api_transport: API .* failed \(attempt \d+/\d+\), retrying in [\d.]+ s: ",
)
# An upload ended in an error the user is shown, or one method gave way to the next.
UPLOAD_FAILED = (
    r"^WARNING desktop_uploader\.engine\.attempt: .* failed \(\w+\): ",
    r"^WARNING desktop_uploader\.engine\.attempt: .* failed \(.*\); falling back to ",
)
# The reference server's storage refused a request (an unknown upload id, a part storage lost).
STORAGE_REFUSED = (r"^WARNING desktop_uploader\.server\.storage: S3 \w+ failed: \w+$",)
# A server without ``sign`` whose links expired: the upload was started over, as the job's notice says.
STARTED_OVER = (
    r"^WARNING desktop_uploader\.engine\.methods\.base: .*: The server's upload links expired.* started again\.$",
)
FAULTS = (*RETRIED, *UPLOAD_FAILED, *STORAGE_REFUSED, *STARTED_OVER)
# A give-up whose target is unreachable is owed for later; a lost start's upload a server without list can't find.
OWED = (
    r"^WARNING desktop_uploader\.engine\.ledger: Could not abort .*; will try again later$",
    r"^WARNING desktop_uploader\.engine\.methods\.lost_starts: .* could not be checked now; that is retried later$",
    r"^WARNING desktop_uploader\.engine\.methods\.base: .*: This server can't list uploads, ",
)
# The notice (once per server and session) that a lost start's upload can't be found without list.
UNLISTABLE = (OWED[-1],)
# Malformed requests on purpose (fuzzing): the multipart parser says what it skipped.
HOSTILE_INPUT = (r"^WARNING python_multipart\.multipart: ",)


class _Collector(logging.Handler):
    """Keeps WARNING and above, from whichever thread logs them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)  # list.append is atomic; the handler's own lock guards emit anyway


def describe(record: logging.LogRecord) -> str:
    return f"{record.levelname} {record.name}: {record.getMessage()}"


def _allowed(node: pytest.Item) -> list[re.Pattern[str]]:
    return [re.compile(pattern) for marker in node.iter_markers(MARKER) for pattern in marker.args]


def unexpected(records: list[logging.LogRecord], allowed: list[re.Pattern[str]]) -> list[str]:
    return [describe(record) for record in records if not any(pattern.search(describe(record)) for pattern in allowed)]


@pytest.fixture(autouse=True)
def logfail(request: pytest.FixtureRequest) -> Iterator[None]:
    collector = _Collector()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.addHandler(collector)
    try:
        yield
    finally:
        # A test that runs the app's real main() leaves its log handlers on the root logger; the next
        # test must not log into that test's files (or through its redaction) by accident.
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
    found = unexpected(collector.records, _allowed(request.node))
    if not found:
        return
    report = os.environ.get("LOGFAIL_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as sink:
            sink.writelines(f"{request.node.nodeid}\t{line}\n" for line in found)
        return
    listing = "\n".join(f"  {line}" for line in found[:20])
    crashes = [record for record in collector.records if record.exc_info and record.exc_info[1] is not None]
    if crashes:  # the first crash in full: a log line alone rarely says where it came from
        listing += "\n" + "".join(traceback.format_exception(*crashes[0].exc_info))  # type: ignore[misc]
    more = f"\n  … and {len(found) - 20} more" if len(found) > 20 else ""
    pytest.fail(f"unexpected log records (mark the test allow_log if they are expected):\n{listing}{more}", False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*patterns): WARNING/ERROR log records this test expects (regex on 'logger: message')"
    )
