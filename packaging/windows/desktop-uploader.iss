; Windows installer (Inno Setup 6): built on Windows by .github/workflows/package.yml, after
; `python packaging\build.py --no-deb` has made dist\desktop-uploader. Per-user install by
; default (no administrator needed), Start-menu shortcut, optional desktop shortcut, an
; uninstaller in Settings > Apps. Build by hand: iscc /DAppVersion=0.1.0 packaging\windows\desktop-uploader.iss

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "Desktop Uploader"
#define AppExe "Desktop Uploader.exe"

[Setup]
AppId={{6E3C1A7E-2B5D-4C8A-9D51-7F0B2E4A6C13}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Desktop Uploader team
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=DesktopUploader-Setup-{#AppVersion}
SetupIconFile=..\..\resources\icons\desktop-uploader.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "Put a shortcut on the desktop"; GroupDescription: "Shortcuts:"; Flags: unchecked

[Files]
Source: "..\..\dist\desktop-uploader\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}"; Description: "Open {#AppName} now"; Flags: nowait postinstall skipifsilent
