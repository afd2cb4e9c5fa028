#!/usr/bin/env bash
# macOS: build "Desktop Uploader.app" with PyInstaller and wrap it in a .dmg with an Applications
# shortcut, so people drag the app across. Runs on macOS 15 (see .github/workflows/package.yml).
#
# Signing, with MACOS_SIGN_IDENTITY set (a "Developer ID Application" identity in an unlocked
# keychain: the workflow imports it): inside-out, never `codesign --deep`, which Apple discourages
# and which gets PyInstaller apps rejected by notarization. Every Mach-O file first (Qt and
# Python libraries and extensions; weed.xz is data), then each nested framework, then
# the app itself, all with the hardened runtime and entitlements.plist. A signed app still needs
# notarizing (notarize.sh) or Gatekeeper blocks it; unsigned builds are for testing only (README:
# System Settings > Privacy & Security > Open Anyway).
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(python -c 'import desktop_uploader; print(desktop_uploader.__version__)')
export APP_VERSION="$VERSION"
ENTITLEMENTS="packaging/macos/entitlements.plist"
python packaging/build.py --no-deb
APP="dist/Desktop Uploader.app"
[ -d "$APP" ] || { echo "PyInstaller did not produce $APP" >&2; exit 1; }

sign() {
  codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" \
    --sign "$MACOS_SIGN_IDENTITY" "$@"
}

if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  # 1. Every Mach-O file that is not the app's main executable, deepest first.
  find "$APP/Contents" -type f -print0 | while IFS= read -r -d '' file; do
    if file -b "$file" | grep -q 'Mach-O' && [ "$file" != "$APP/Contents/MacOS/desktop-uploader" ]; then
      sign "$file"
    fi
  done
  # 2. Nested frameworks (Qt's), deepest first, now that what is inside them is signed.
  find "$APP/Contents" -depth -type d -name '*.framework' -print0 | while IFS= read -r -d '' framework; do
    sign "$framework"
  done
  # 3. The app last: its signature seals everything above.
  sign "$APP"
  codesign --verify --strict --verbose=2 "$APP"
fi

STAGE=$(mktemp -d)
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
DMG="dist/DesktopUploader-$VERSION.dmg"
rm -f "$DMG"
# hdiutil fails now and then with "Resource busy" on CI runners (a Spotlight or XProtect scan holds
# the fresh image): try again a few times, waiting longer each time, before giving up.
for attempt in 1 2 3 4 5; do
  if hdiutil create -volname "Desktop Uploader" -srcfolder "$STAGE" -ov -format UDZO "$DMG"; then
    break
  fi
  [ "$attempt" -lt 5 ] || { echo "hdiutil failed 5 times" >&2; exit 1; }
  echo "hdiutil failed (attempt $attempt); trying again" >&2
  sleep $((attempt * 10))
done
rm -rf "$STAGE"
if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$MACOS_SIGN_IDENTITY" "$DMG"
fi
echo "built $DMG"
