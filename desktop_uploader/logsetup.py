"""One logging set-up for the CLI, the GUI and the servers: a rotating file, redacted.

The file lives in the user log dir so people can attach it to a support request; every handler
carries :class:`RedactingFilter`, so presigned URL signatures and tokens never reach it.

Logging never breaks the app or litters the terminal: a name that isn't valid text is written with
backslash escapes, and a handler that fails anyway (disk full, closed stream) stays silent instead of
printing a traceback (``logging.raiseExceptions`` off, as for a release build).
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import sys
from pathlib import Path

from desktop_uploader.engine.private import private_dir, private_file
from desktop_uploader.engine.redact import RedactingFilter


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Each log file (the first and every one rotation starts) is 0600: it names every file sent."""

    def _open(self) -> io.TextIOWrapper:
        private_file(Path(self.baseFilename))
        return super()._open()


FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"


def configure_logging(
    log_file: Path | None,
    *,
    level: int = logging.INFO,
    console_level: int | None = None,
    secrets: tuple[str, ...] = (),
) -> None:
    logging.raiseExceptions = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_desktop_uploader", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if log_file is not None:
        private_dir(log_file.parent)
        file_handler = _PrivateRotatingFileHandler(
            log_file, maxBytes=5 * 1024 * 1024, backupCount=5, encoding="utf-8", errors="backslashreplace"
        )
        file_handler.setLevel(level)
        handlers.append(file_handler)
    if console_level is not None:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(console_level)
        handlers.append(console)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactingFilter(secrets))
        handler._desktop_uploader = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(min([level, *([console_level] if console_level is not None else [])]))
    # Third-party chatter that would drown the upload story at INFO.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "asyncio", "multipart"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
