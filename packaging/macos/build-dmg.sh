#!/usr/bin/env bash
# macOS: build "Desktop Uploader.app" with PyInstaller and wrap it in a .dmg with an Applications
# shortcut, so people drag the app across. Runs on macOS (see .github/workflows/package.yml).
# Signing and notarising need an Apple Developer ID: set MACOS_SIGN_IDENTITY (and, for
# notarytool, APPLE_ID / APPLE_TEAM_ID / APPLE_APP_PASSWORD); without them the .dmg is unsigned and
# people open it with right-click > Open the first time.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(python -c 'import desktop_uploader; print(desktop_uploader.__version__)')
export APP_VERSION="$VERSION"
python packaging/build.py --no-deb
APP="dist/Desktop Uploader.app"
[ -d "$APP" ] || { echo "PyInstaller did not produce $APP" >&2; exit 1; }
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --force --deep --options runtime --timestamp --sign "$MACOS_SIGN_IDENTITY" "$APP"
fi
STAGE=$(mktemp -d)
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
DMG="dist/DesktopUploader-$VERSION.dmg"
rm -f "$DMG"
hdiutil create -volname "Desktop Uploader" -srcfolder "$STAGE" -ov -format UDZO "$DMG"
rm -rf "$STAGE"
if [ -n "${MACOS_SIGN_IDENTITY:-}" ] && [ -n "${APPLE_ID:-}" ]; then
  codesign --sign "$MACOS_SIGN_IDENTITY" --timestamp "$DMG"
  xcrun notarytool submit "$DMG" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
    --password "$APPLE_APP_PASSWORD" --wait
  xcrun stapler staple "$DMG"
fi
echo "built $DMG"
