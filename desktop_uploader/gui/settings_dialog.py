"""Settings: connection, performance, behaviour, advanced.

Every edit builds a candidate :class:`Settings`; its own validation decides, so the dialog can
never save what the engine would refuse, and the reason shown is the engine's sentence naming
the limit. Fields accept more than is valid on purpose: typing 1000 parts sent at once explains the
limit instead of silently turning into 100 or 64.

Enter saves, unless the person Tabbed to Cancel: "Test connection" and "Restore Defaults" never take it,
so pressing Enter after a test can't reset everything, and restoring defaults asks first. Saving a
changed server tests it first, off the GUI thread, and so does saving changed keys for your own S3
storage when uploads go there; if a test fails the dialog stays open with the reason and a "Save
anyway" choice, so the window never claims a connection it doesn't have. Sizes and speeds are in MiB.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from desktop_uploader.engine.errors import SettingsError
from desktop_uploader.engine.limits import MiB
from desktop_uploader.engine.methods.base import DIRECT
from desktop_uploader.engine.settings import CUSTOM_PRESET, DEFAULT_REGION, PRESETS, Settings
from desktop_uploader.gui.form_widgets import (
    after_a_failed_test,
    held,
    plain_problem,
    problem_row,
    restore_question,
)
from desktop_uploader.gui.settings_pages import AdvancedPage, BehaviourPage, ConnectionPage, PerformancePage
from desktop_uploader.gui.tasks import spawn

Probe = tuple[bool, str]  # passed, and the sentence that says so or why not
Tester = Callable[[str, str], Awaitable[Probe]]
DirectTester = Callable[[Settings, str], Awaitable[Probe]]


class SettingsDialog(QDialog):
    def __init__(
        self,
        settings: Settings,
        *,
        token: str,
        token_home: str,
        direct_secret: str = "",
        log_dir: Path,
        tester: Tester,
        direct_tester: DirectTester | None = None,
        unavailable: Mapping[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.original = settings
        self.tester, self.direct_tester = tester, direct_tester
        self.log_dir = log_dir
        self._candidate: Settings | None = settings
        self._filling = False
        self._token_before = token
        self.probe: Probe | None = None  # the last server test for what Save would save
        advanced = self._advanced_page(direct_secret, log_dir)  # made first: Connection reads its routes' paths
        tabs = QTabWidget(self)
        tabs.addTab(self._connection_tab(token, token_home), "Connection")
        tabs.addTab(self._performance_page(), "Performance")
        behaviour = BehaviourPage(self._method_chosen, self.revalidate)
        self.method, self.fallback, self.notifications = behaviour.method, behaviour.fallback, behaviour.notifications
        self.auto_start, self.keep_awake = behaviour.auto_start, behaviour.keep_awake
        self.minimize_to_tray = behaviour.minimize_to_tray
        behaviour.mark_unavailable(unavailable or {})
        advanced.follow_method(self.method)  # "Send uploads to this storage" is the method, said where keys are typed
        tabs.addTab(behaviour, "Behaviour")
        tabs.addTab(advanced, "Advanced")
        self.tabs = tabs
        self.problem, self.save_anyway, problems = problem_row(self)
        self.save_anyway.clicked.connect(self.accept)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        restore = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.buttons.accepted.connect(lambda: spawn(self.save()))
        self.buttons.rejected.connect(self.reject)
        restore.clicked.connect(lambda: restore_question(self, self.restore_defaults).open())
        for button in (restore, self.save_anyway, self.test_button):
            button.setAutoDefault(False)  # a focused button other than Save or Cancel never takes Enter
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setAutoDefault(True)  # Tab to it, Enter cancels
        self.save_button.setDefault(True)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addLayout(problems)
        layout.addWidget(self.buttons)
        self.fill(settings)
        self._direct_before = [edit.text() for edit in self.advanced.direct_fields()]

    # -- tabs ---------------------------------------------------------------------------------------------

    def _connection_tab(self, token: str, token_home: str) -> QWidget:
        test = lambda: spawn(self.test_connection())  # noqa: E731
        self.connection = page = ConnectionPage(token, token_home, self.revalidate, test, self.advanced.route_paths)
        self.server_url, self.token_edit = page.server_url, page.token_edit
        self.test_button, self.test_result = page.test_button, page.test_result
        return page

    def _advanced_page(self, direct_secret: str, log_dir: Path) -> AdvancedPage:
        self.advanced = page = AdvancedPage(direct_secret, log_dir, self.revalidate)
        self.direct_endpoint, self.direct_bucket = page.direct_endpoint, page.direct_bucket
        self.direct_region, self.direct_prefix = page.direct_region, page.direct_prefix
        self.direct_access_key, self.direct_secret_edit = page.direct_access_key, page.direct_secret_edit
        self.presigned_path, self.chunked_path = page.presigned_path, page.chunked_path
        self.url_expiry, self.read_timeout, self.legacy_path = page.url_expiry, page.read_timeout, page.legacy_path
        self.read_timeout.valueChanged.connect(self._performance_edited)  # presets set it too
        page.direct_test_button.setVisible(self.direct_tester is not None)
        page.direct_test_button.clicked.connect(lambda: spawn(self.test_direct()))
        return page

    def _performance_page(self) -> PerformancePage:
        self.performance = page = PerformancePage(self._apply_preset, self._performance_edited)
        self.preset, self.preset_note, self.chunk_size = page.preset, page.preset_note, page.chunk_size
        self.concurrency, self.retries, self.backoff = page.concurrency, page.retries, page.backoff
        self.files_at_once, self.bandwidth = page.files_at_once, page.bandwidth
        return page

    # -- values -------------------------------------------------------------------------------------------

    def fill(self, settings: Settings) -> None:
        self._filling = True
        try:
            self.server_url.setText(settings.server_url)
            self.preset.setCurrentText(settings.preset if settings.preset in PRESETS else CUSTOM_PRESET)
            self.performance.show_part_size(settings)
            self.concurrency.setValue(settings.concurrency)
            self.retries.setValue(settings.retries)
            self.backoff.setValue(settings.backoff_base)
            self.files_at_once.setValue(settings.files_at_once)
            self.bandwidth.setValue(settings.bandwidth_limit / MiB)
            self.fallback.setChecked(settings.fallback)
            self.notifications.setChecked(settings.notifications)
            self.auto_start.setChecked(settings.auto_start)
            self.keep_awake.setChecked(settings.keep_awake)
            self.minimize_to_tray.setChecked(settings.minimize_to_tray)
            self.presigned_path.setText(settings.presigned_path)
            self.chunked_path.setText(settings.chunked_path)
            self.legacy_path.setText(settings.legacy_path)
            self.url_expiry.setValue(settings.url_expiry_seconds)
            self.read_timeout.setValue(settings.read_timeout)
            self.method.setCurrentIndex(max(0, self.method.findData(settings.method)))
            self.direct_endpoint.setText(settings.direct_endpoint)
            self.direct_bucket.setText(settings.direct_bucket)
            self.direct_access_key.setText(settings.direct_access_key)
            self.direct_region.setText(settings.direct_region)
            self.direct_prefix.setText(settings.direct_prefix)
        finally:
            self._filling = False
        self._show_preset_note()
        self._method_chosen()

    def _collect(self) -> Settings:
        url = self.connection.site_address()
        return self.original.replace(
            server_url=url,
            use_sandbox=not url,  # the promise the hint makes: empty means the local sandbox
            preset=self.preset.currentText(),
            **self.performance.part_size(),
            concurrency=self.concurrency.value(),
            retries=self.retries.value(),
            backoff_base=self.backoff.value(),
            backoff_cap=max(self.original.backoff_cap, self.backoff.value()),
            files_at_once=self.files_at_once.value(),
            bandwidth_limit=round(self.bandwidth.value() * MiB),
            fallback=self.fallback.isChecked(),
            notifications=self.notifications.isChecked(),
            auto_start=self.auto_start.isChecked(),
            keep_awake=self.keep_awake.isChecked(),
            minimize_to_tray=self.minimize_to_tray.isChecked(),
            presigned_path=self.presigned_path.text().strip(),
            chunked_path=self.chunked_path.text().strip(),
            legacy_path=self.legacy_path.text().strip(),
            url_expiry_seconds=self.url_expiry.value(),
            read_timeout=self.read_timeout.value(),
            method=str(self.method.currentData() or "auto"),
            **self._direct_values(),
        )

    def _direct_values(self) -> dict[str, str]:
        """Your own S3 storage's settings as typed (the secret is kept apart, in the keychain)."""
        return {
            "direct_endpoint": self.direct_endpoint.text().strip().rstrip("/"),
            "direct_region": self.direct_region.text().strip() or DEFAULT_REGION,
            "direct_bucket": self.direct_bucket.text().strip(),
            "direct_prefix": self.direct_prefix.text().strip().strip("/"),
            "direct_access_key": self.direct_access_key.text().strip(),
        }

    def revalidate(self, *_: object) -> None:
        if self._filling:
            return
        problem, to_fill_in = "", ""
        try:
            self._candidate = self._collect()
            if self._candidate.server_url and not self.token_edit.text().strip():
                problem = "Enter the access token for this server."
                self._candidate = None
            elif self._candidate.method == "direct-s3" and not self._candidate.direct_bucket:
                to_fill_in = "To send uploads to your own S3 storage, fill in its bucket (Advanced tab)."
                self._candidate = None
        except SettingsError as exc:
            self._candidate = None
            problem = plain_problem(exc.message)
        self.probe = None
        self.save_anyway.setVisible(False)
        if to_fill_in:  # not a mistake: what is left to type, with Save off until it is
            self.problem.show_note(to_fill_in)
        else:
            self.problem.show_problem(problem)
        self.save_button.setEnabled(self._candidate is not None)

    def _method_chosen(self, *_: object) -> None:
        """Only Automatic falls back to another method; for the others the box would promise nothing."""
        method = str(self.method.currentData() or "auto")
        self.fallback.setEnabled(method == "auto")
        self.fallback.setToolTip(
            "If sending straight to storage fails, send through the server instead."
            if method == "auto"
            else f"Only Automatic falls back: with “{self.method.currentText()}” every file goes that one way."
        )
        self.revalidate()

    def _apply_preset(self, name: str) -> None:
        if self._filling or name not in PRESETS:
            self._show_preset_note()
            return
        values = PRESETS[name].values
        self._filling = True
        try:
            self.performance.show_part_size(Settings().replace(**values))
            self.concurrency.setValue(values["concurrency"])
            self.retries.setValue(values["retries"])
            self.backoff.setValue(values["backoff_base"])
            self.read_timeout.setValue(values["read_timeout"])
        finally:
            self._filling = False
        self._show_preset_note()
        self.revalidate()

    def _show_preset_note(self) -> None:
        preset = PRESETS.get(self.preset.currentText())
        self.preset_note.setText(f"{preset.summary}." if preset else "Your own values.")

    def _performance_edited(self, *_: object) -> None:
        """The preset follows the values: Custom once one differs, and a preset's name again once all match it.

        A GUI audit typed 0.01 into Chunk size and then 8 again: every value was Normal's, yet the preset
        stayed Custom, and only a named preset lets part size follow the connection.
        """
        if not self._filling:
            values = self._collect_quietly()
            same = (p.name for p in PRESETS.values() if values and values == values.replace(**p.values))
            matching = next(same, CUSTOM_PRESET)
            if matching != self.preset.currentText():
                self._filling = True
                self.preset.setCurrentText(matching)
                self._filling = False
                self._show_preset_note()
        self.revalidate()

    def _collect_quietly(self) -> Settings | None:
        try:
            return self._collect()
        except SettingsError:
            return None

    def restore_defaults(self) -> None:
        """Performance, behaviour and advanced values go back to defaults; where uploads go stays, as typed:
        the server and token, your own S3 storage (its secret stayed while the rest went, in a GUI audit), and
        sending there (unticked, the next files went to the test storage). Other methods go back to Automatic."""
        kept = [(edit, edit.text()) for edit in self._where_uploads_go()]
        method = DIRECT if self.method.currentData() == DIRECT else "auto"
        self.fill(Settings(use_sandbox=self.original.use_sandbox, method=method))
        for edit, text in kept:
            edit.setText(text)

    def _where_uploads_go(self) -> list[QLineEdit]:
        direct = [edit for edit in self.advanced.direct_fields() if edit is not self.direct_secret_edit]  # never reset
        return [self.server_url, self.token_edit, *direct]

    def result_settings(self) -> Settings:
        assert self._candidate is not None, "Save is disabled while settings are invalid"
        return self._candidate

    def direct_secret(self) -> str | None:
        return self.direct_secret_edit.text().strip() or None

    def token(self) -> str:
        """The token as typed; empty when the field was emptied, which forgets the saved one."""
        return self.token_edit.text().strip()

    async def test_connection(self) -> Probe:
        """Probe the server as typed (the tester runs off the GUI thread) and show what it said."""
        tested = (self.server_url.text(), self.token_edit.text())
        self.test_result.show_note("Testing… (a server that was asleep can take up to a minute to answer)")
        with held(self.test_button):
            ok, text = await self.tester(self.connection.site_address(), tested[1].strip())
        if isValid(self) and (self.server_url.text(), self.token_edit.text()) == tested:
            self.test_result.show_result(ok, text)
        return ok, text

    async def test_direct(self) -> Probe:
        """Your own S3 storage as typed (a GUI audit's wrong secret was saved without a word)."""
        assert self.direct_tester is not None
        page, fields = self.advanced, self.advanced.direct_fields()
        tested = [edit.text() for edit in fields]
        try:
            settings = self.original.replace(**self._direct_values())
        except SettingsError as exc:  # an endpoint without http://: "Testing…" stayed for good (a direct-S3 audit)
            said = plain_problem(exc.message)  # once: it stood here and at the bottom, word for word (an audit)
            page.direct_test_result.show_result(
                False, "Not tested: fix what is said below first." if said == self.problem.text() else said
            )
            return False, exc.message
        page.direct_test_result.show_note("Testing…")
        with held(page.direct_test_button):
            ok, text = await self.direct_tester(settings, self.direct_secret_edit.text().strip())
        if isValid(self) and [edit.text() for edit in fields] == tested:
            page.direct_test_result.show_result(ok, text)
        return ok, text

    async def save(self) -> None:
        """Save; a changed server or token, and your own S3 keys when uploads go there, are tested first.

        A failed test keeps the dialog open (a GUI audit saved a wrong secret and learned it when a file failed).
        """
        candidate = self._candidate if isValid(self) and self.isVisible() else None
        if candidate is None:
            return  # invalid, or the dialog was closed before this ran
        for test, fix, page in self._tests_before_saving(candidate):
            with held(self.save_button):  # clicked, it keeps the focus: Cancel took it, and Enter lost all typed
                ok, text = await test()
            if isValid(self):
                self.save_button.setEnabled(self._candidate is not None)
            if not isValid(self) or not self.isVisible() or self._candidate is not candidate:
                return  # cancelled, or edited while testing: the person saves what they see now
            if test == self.test_connection:
                self.probe = (ok, text)
            if not ok:  # the tab whose test failed comes forward, its reason under its test button
                self.tabs.setCurrentWidget(page)
                self.problem.show_problem(after_a_failed_test(text, fix))
                self.save_anyway.setVisible(True)
                return
        self.accept()

    def _tests_before_saving(self, candidate: Settings) -> list[tuple[Callable[[], Awaitable[Probe]], str, QWidget]]:
        tests: list[tuple[Callable[[], Awaitable[Probe]], str, QWidget]] = []
        if candidate.server_url and (candidate.server_url, self.token_edit.text()) != (
            self.original.server_url,
            self._token_before,
        ):
            fix = "Fix the address or token above, or press Save anyway."
            tests.append((self.test_connection, fix, self.connection))
        keys = [edit.text() for edit in self.advanced.direct_fields()]
        going_direct = candidate.method == "direct-s3" and self.direct_tester is not None
        if going_direct and (self.original.method != "direct-s3" or keys != self._direct_before):
            tests.append((self.test_direct, "Fix the storage details above, or press Save anyway.", self.advanced))
        return tests
