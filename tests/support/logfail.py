"""Fail any test that logs an unexpected WARNING or ERROR, as qutebrowser's ``logfail`` does.

The engine turns a crash in a listener, or any other "unexpected" path, into a log record and carries
on, so a test could pass while the code under it logged a crash. This handler sits on the root logger
for each test: its setup, its call and its teardown. It collects every record at WARNING or above,
from any thread, and the test ends in an error that lists those it did not expect.

A test that expects such a record says so, with a regular expression matched against
``"<logger name>: <message>"``::

    @pytest.mark.allow_log(r"desktop_uploader\\.server\\.storage: S3 \\w+ failed")

``LOGFAIL_REPORT=<file>`` appends the records to that file instead of failing, to survey a whole run.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator

import pytest

MARKER = "allow_log"


class _Collector(logging.Handler):
    """Keeps WARNING and above, from whichever thread logs them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)  # list.append is atomic; the handler's own lock guards emit anyway


def describe(record: logging.LogRecord) -> str:
    return f"{record.name}: {record.getMessage()}"


def _allowed(node: pytest.Item) -> list[re.Pattern[str]]:
    return [re.compile(pattern) for marker in node.iter_markers(MARKER) for pattern in marker.args]


def unexpected(records: list[logging.LogRecord], allowed: list[re.Pattern[str]]) -> list[str]:
    return [
        f"{record.levelname} {describe(record)}"
        for record in records
        if not any(pattern.search(describe(record)) for pattern in allowed)
    ]


@pytest.fixture(autouse=True)
def logfail(request: pytest.FixtureRequest) -> Iterator[None]:
    collector = _Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield
    finally:
        root.removeHandler(collector)
    found = unexpected(collector.records, _allowed(request.node))
    if not found:
        return
    report = os.environ.get("LOGFAIL_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as sink:
            sink.writelines(f"{request.node.nodeid}\t{line}\n" for line in found)
        return
    listing = "\n".join(f"  {line}" for line in found[:20])
    more = f"\n  … and {len(found) - 20} more" if len(found) > 20 else ""
    pytest.fail(f"unexpected log records (mark the test allow_log if they are expected):\n{listing}{more}", False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*patterns): WARNING/ERROR log records this test expects (regex on 'logger: message')"
    )
