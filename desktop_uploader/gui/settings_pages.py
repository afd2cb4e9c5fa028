"""The settings dialog's tabs (Connection, Performance, Behaviour, Advanced) as pages of their own.

They keep the dialog readable: it reads and writes their fields, they only lay them out. The server's API paths only
matter to whoever runs the server, so they sit in a group that is closed until someone opens it:
a person who can't use them never has to wonder whether to change them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_uploader.connection import site_address
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.settings import AUTO_PART_SIZE_BASE, CUSTOM_PRESET, PRESETS, Settings
from desktop_uploader.gui.folders import open_folder
from desktop_uploader.gui.form_widgets import (
    ANY_NUMBER,
    METHOD_CHOICES,
    TestResultLabel,
    add_line_edits,
    collapsible,
    count_box,
    decimal_box,
    hint_label,
    spin_box,
)


class ConnectionPage(QWidget):
    def __init__(
        self,
        token: str,
        token_home: str,
        on_edit: Callable[..., None],
        on_test: Callable[[], object],
        route_paths: Callable[[], list[str]],
    ) -> None:
        super().__init__()
        self.route_paths = route_paths
        form = QFormLayout(self)
        self.server_url = QLineEdit()
        self.server_url.setObjectName("serverUrl")
        self.server_url.setAccessibleName("Server address")
        self.server_url.setPlaceholderText("https://your-app.example.com")
        form.addRow("Server address", self.server_url)
        form.addRow("", hint_label("Leave it empty to upload to a test storage on this computer (the local sandbox)."))
        self.token_edit = QLineEdit(token)
        self.token_edit.setObjectName("token")
        self.token_edit.setAccessibleName("Access token")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("The access token you were given")
        form.addRow("Access token", self.token_edit)
        form.addRow("", hint_label(f"The token is kept in {token_home}."))
        row = QHBoxLayout()
        self.test_button = QPushButton("Test connection")
        self.test_button.setObjectName("testConnection")
        self.test_button.setAccessibleName("Test connection")
        self.test_button.clicked.connect(on_test)
        row.addWidget(self.test_button)
        row.addStretch(1)
        form.addRow("", row)
        self.test_result = TestResultLabel()
        self.test_result.setObjectName("testResult")
        form.addRow("", self.test_result)
        for edit in (self.server_url, self.token_edit):
            edit.textChanged.connect(on_edit)
            edit.textChanged.connect(self.test_result.clear)  # a result is about what was tested, not what is typed
        self.server_url.editingFinished.connect(self._take_off_route_path)

    def site_address(self) -> str:
        """The address as typed, without an upload route's path pasted onto it (the app adds that itself)."""
        return site_address(self.server_url.text(), self.route_paths())

    def _take_off_route_path(self) -> None:
        """Shows the address as it will be used, and says why, when a route's own path was pasted with it."""
        typed, site = self.server_url.text().strip().rstrip("/"), self.site_address()
        if site != typed:
            self.server_url.setText(site)
            self.test_result.show_note(f"The app adds {typed[len(site) :]} itself, so it was taken off the address.")


class PerformancePage(QWidget):
    def __init__(self, on_preset: Callable[[str], None], on_edit: Callable[..., None]) -> None:
        super().__init__()
        form = QFormLayout(self)
        self.preset = QComboBox()
        self.preset.setObjectName("preset")
        self.preset.setAccessibleName("Preset")
        self.preset.addItems([*PRESETS, CUSTOM_PRESET])
        self.preset.currentTextChanged.connect(on_preset)
        form.addRow("Preset", self.preset)
        self.preset_note = hint_label("")
        form.addRow("", self.preset_note)
        self.chunk_size = decimal_box(0.0, ANY_NUMBER, 2, " MiB", "Auto")  # 0 shows as Auto
        self.chunk_size.setObjectName("chunkSize")
        self.chunk_size.setAccessibleName("Chunk size in MiB, or 0 for Auto")
        form.addRow("Chunk size", self.chunk_size)
        form.addRow(
            "",
            hint_label(
                "Files are sent in pieces of this size. Auto (type 0) sizes them to your connection. "
                "Storage needs pieces of at least 5 MiB, so smaller ones are raised to 5 MiB, and very "
                "large files get bigger pieces. Sizes and speeds here are in MiB (1,048,576 bytes)."
            ),
        )
        self.concurrency = count_box(0, ANY_NUMBER, " part", " parts", "Auto")
        self.concurrency.setObjectName("concurrency")
        self.concurrency.setAccessibleName("Parts sent at once per file")
        form.addRow("Parts sent at once", self.concurrency)
        form.addRow("", hint_label("Auto adapts to your connection. More parts help most on unreliable connections."))
        self.retries = count_box(0, ANY_NUMBER, " try", " tries")
        self.retries.setObjectName("retries")
        self.retries.setAccessibleName("Tries per part")
        form.addRow("Tries per part", self.retries)
        self.backoff = decimal_box(0.0, ANY_NUMBER, 2, " s")
        self.backoff.setObjectName("backoff")
        # The engine waits a random share of this (full jitter, retry.py) so that parts failed together
        # don't retry together: an audit read "after 1.00 s" and saw the first retry at 0.8 s.
        self.backoff.setAccessibleName("Longest wait before the first retry, in seconds")
        form.addRow("First retry within", self.backoff)
        self.files_at_once = count_box(0, ANY_NUMBER, " file", " files")
        self.files_at_once.setObjectName("filesAtOnce")
        self.files_at_once.setAccessibleName("Files uploading at once")
        form.addRow("Files at once", self.files_at_once)
        self.bandwidth = decimal_box(0.0, ANY_NUMBER, 3, " MiB/s", "Unlimited")
        self.bandwidth.setObjectName("bandwidth")
        self.bandwidth.setAccessibleName("Bandwidth limit in MiB per second")
        form.addRow("Bandwidth limit", self.bandwidth)
        # Saved mid-upload, a new chunk size showed nowhere and left the audit guessing what had changed.
        when = (
            "The bandwidth limit applies at once, and so does a higher Files at once; a lower one lets the "
            "uploads running finish first. The rest apply to uploads that start or resume after you save; a "
            "paused upload keeps its chunk size."
        )
        form.addRow("", hint_label(when))
        for box in (self.chunk_size, self.concurrency, self.retries, self.backoff, self.files_at_once, self.bandwidth):
            box.valueChanged.connect(on_edit)

    def show_part_size(self, settings: Settings) -> None:
        self.chunk_size.setValue(0.0 if settings.part_size_is_auto else settings.chunk_size / MiB)

    def part_size(self) -> dict[str, object]:
        """The part size as Settings hold it: Auto (with the default size, for fixed parts), or the typed one."""
        if self.chunk_size.value() == 0:
            return {"auto_part_size": True, "chunk_size": AUTO_PART_SIZE_BASE}
        return {"auto_part_size": False, "chunk_size": round(self.chunk_size.value() * MiB)}


class BehaviourPage(QWidget):
    def __init__(self, on_method: Callable[..., None], on_change: Callable[..., None]) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        method_row = QFormLayout()
        self.method = QComboBox()
        self.method.setObjectName("method")
        self.method.setAccessibleName("Upload method")
        for label, value in METHOD_CHOICES:
            self.method.addItem(label, value)
        self.method.currentIndexChanged.connect(on_method)
        method_row.addRow("Upload method", self.method)
        # The method is chosen here and your storage's details typed on Advanced: nothing pointed from one to
        # the other (a GUI audit's finding).
        method_row.addRow("", hint_label("Direct uploads go to your own S3 storage, set on the Advanced tab."))
        layout.addLayout(method_row)
        self.fallback = QCheckBox("With Automatic, fall back to a chunked upload through the server when needed")
        self.notifications = QCheckBox("Notify me when a batch finishes or a file fails")
        self.auto_start = QCheckBox("Start uploads as soon as files are added")
        self.keep_awake = QCheckBox("Keep the computer awake while uploading")
        self.minimize_to_tray = QCheckBox("Closing the window keeps uploads running in the tray")
        for box, name in (
            (self.fallback, "fallback"),
            (self.notifications, "notifications"),
            (self.auto_start, "autoStart"),
            (self.keep_awake, "keepAwake"),
            (self.minimize_to_tray, "minimizeToTray"),
        ):
            box.setObjectName(name)
            box.setAccessibleName(box.text())
            box.toggled.connect(on_change)
            layout.addWidget(box)
        layout.addStretch(1)
        self._layout = layout

    def mark_unavailable(self, reasons: Mapping[str, str]) -> None:
        """Offer only what works here: a box that would silently do nothing is greyed out, with the reason.

        Its saved value is left alone (nothing changes behind the person's back); it just can't act here.
        """
        for box in (self.notifications, self.keep_awake, self.minimize_to_tray):
            reason = reasons.get(box.objectName(), "")
            if not reason:
                continue
            box.setEnabled(False)
            box.setToolTip(reason)
            note = hint_label(f"Not available here: {reason}")
            note.setObjectName(f"{box.objectName()}Unavailable")
            self._layout.insertWidget(self._layout.indexOf(box) + 1, note)


def unavailable_features(*, tray: bool, keep_awake_why: str) -> dict[str, str]:
    """Which behaviour boxes can't work on this desktop, and why (keyed by the box's object name)."""
    reasons: dict[str, str] = {}
    if not tray:
        no_tray = "this desktop has no system tray (notification area) to show them in."
        reasons["notifications"] = no_tray
        reasons["minimizeToTray"] = no_tray.replace("show them in", "keep uploads running in")
    if keep_awake_why:
        reasons["keepAwake"] = keep_awake_why[0].lower() + keep_awake_why[1:]
    return reasons


class AdvancedPage(QWidget):
    def __init__(self, direct_secret: str, log_dir: Path, on_change: Callable[..., None]) -> None:
        super().__init__()
        form = QFormLayout(self)
        self._direct_section(form, direct_secret, on_change)
        self.url_expiry = spin_box(0, ANY_NUMBER, " s")
        self.url_expiry.setObjectName("urlExpiry")
        self.url_expiry.setAccessibleName("Upload link lifetime wish in seconds")
        form.addRow("Upload link lifetime", self.url_expiry)
        form.addRow("", hint_label("A wish: the server decides. Expired links are renewed automatically."))
        self.read_timeout = decimal_box(0.0, ANY_NUMBER, 0, " s")
        self.read_timeout.setObjectName("readTimeout")
        self.read_timeout.setAccessibleName("Stall timeout in seconds")
        form.addRow("Give up on a stalled connection after", self.read_timeout)
        for box in (self.url_expiry, self.read_timeout):
            box.valueChanged.connect(on_change)
        self.presigned_path = QLineEdit()
        self.chunked_path = QLineEdit()
        self.legacy_path = QLineEdit()
        self.paths_toggle, paths = collapsible("Server paths (for server administrators)", "serverPaths")
        paths_form = QFormLayout(paths)
        paths_form.addRow(hint_label("Change these only if whoever runs your server asks you to."))
        add_line_edits(
            paths_form,
            on_change,
            (self.presigned_path, "Presigned upload path", "presignedPath"),
            (self.chunked_path, "Chunked upload path", "chunkedPath"),
            (self.legacy_path, "Single-request path", "legacyPath"),
        )
        form.addRow(self.paths_toggle)
        form.addRow(paths)
        logs = QPushButton("Open the log folder")
        logs.setObjectName("openLogs")
        logs.setAccessibleName("Open the log folder")
        logs.setAutoDefault(False)  # Enter in the dialog saves; it never opens a folder
        logs.clicked.connect(lambda: open_folder(self, log_dir))
        form.addRow("", logs)

    def _direct_section(self, form: QFormLayout, direct_secret: str, on_change: Callable[..., None]) -> None:
        """Your own S3 storage: where it is, the folder to upload into, its keys, and a button to test them."""
        # Its keys were typed here and the method, on another tab, left on Automatic: a direct-s3 audit saved,
        # saw "✓" for its keys, and its files went on to the test storage. Typing a bucket where there was
        # none ticks this box (the method follows it) unless the person has ticked or cleared it by hand.
        self.use_direct = QCheckBox("Send uploads to this storage")
        self.use_direct.setObjectName("useDirect")
        self.use_direct.clicked.connect(lambda: setattr(self, "_direct_chosen", True))
        self._direct_chosen = False
        form.addRow(QLabel("<b>Your own S3 storage</b>"), self.use_direct)
        self.direct_endpoint = QLineEdit()
        self.direct_region = QLineEdit()
        self.direct_bucket = QLineEdit()
        self.direct_prefix = QLineEdit()
        self.direct_access_key = QLineEdit()
        self.direct_secret_edit = QLineEdit(direct_secret)
        self.direct_secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.direct_endpoint.setPlaceholderText("https://s3.example.com (empty: AWS)")
        # Signed into every request: RunPod's storage, for one, refuses the default with a wrong region.
        self.direct_region.setPlaceholderText("us-east-1 (R2: auto; RunPod: as in its endpoint)")
        self.direct_prefix.setPlaceholderText("empty: the top of the bucket")
        add_line_edits(
            form,
            on_change,
            (self.direct_endpoint, "S3 endpoint", "directEndpoint"),
            (self.direct_region, "Region", "directRegion"),
            (self.direct_bucket, "Bucket", "directBucket"),
            (self.direct_prefix, "Folder in the bucket", "directPrefix"),
            (self.direct_access_key, "Access key", "directAccessKey"),
            (self.direct_secret_edit, "Secret key", "directSecret"),
        )
        self.direct_test_button = QPushButton("Test these keys")
        self.direct_test_button.setObjectName("testDirect")
        self.direct_test_button.setAccessibleName("Test your own S3 storage")
        self.direct_test_button.setAutoDefault(False)  # Enter in the dialog saves
        row = QHBoxLayout()
        row.addWidget(self.direct_test_button)
        row.addStretch(1)
        form.addRow("", row)
        self.direct_test_result = TestResultLabel()
        self.direct_test_result.setObjectName("directTestResult")
        # Room for a two-line answer from the start: the dialog is sized when it opens, and a re-check's
        # answer arriving later was cut through its second line, the fields below squeezed.
        self.direct_test_result.setMinimumHeight(2 * self.direct_test_result.fontMetrics().lineSpacing())
        form.addRow("", self.direct_test_result)
        for edit in self.direct_fields():
            edit.textChanged.connect(self.direct_test_result.clear)  # a result is about what was tested
        self._bucket_before = ""
        self.direct_bucket.textChanged.connect(self._bucket_changed)

    def _bucket_changed(self, text: str) -> None:
        was_empty, self._bucket_before = not self._bucket_before.strip(), text
        typed = self.direct_bucket.isModified()  # by the person, not filled in from the saved settings
        if typed and was_empty and text.strip() and not self._direct_chosen:
            self.use_direct.setChecked(True)

    def follow_method(self, method: QComboBox) -> None:
        """Keep the box and the Behaviour tab's method one setting: ticking it chooses direct-s3, clearing it
        Automatic, and choosing a method there ticks or clears it."""

        def method_chosen() -> None:
            with QSignalBlocker(self.use_direct):
                self.use_direct.setChecked(method.currentData() == "direct-s3")

        method.currentIndexChanged.connect(method_chosen)
        self.use_direct.toggled.connect(
            lambda on: method.setCurrentIndex(max(0, method.findData("direct-s3" if on else "auto")))
        )
        method_chosen()

    def route_paths(self) -> list[str]:
        """The upload routes' paths as typed: pasted onto the server's address, they are taken off it."""
        return [edit.text() for edit in (self.presigned_path, self.chunked_path, self.legacy_path)]

    def direct_fields(self) -> list[QLineEdit]:
        """Your own S3 storage's fields: what Test these keys, and Save, test."""
        return [
            self.direct_endpoint,
            self.direct_region,
            self.direct_bucket,
            self.direct_prefix,
            self.direct_access_key,
            self.direct_secret_edit,
        ]
