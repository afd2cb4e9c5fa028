; Windows installer: Inno Setup 6.3 or later (ArchitecturesAllowed=x64compatible is new in 6.3;
; older compilers reject it). Built on Windows by .github/workflows/package.yml, after
; `python packaging\build.py --no-deb` has made dist\desktop-uploader. Per-user install by
; default (no administrator needed; the first page asks "for me only" or "for all users", which
; needs an administrator), Start-menu shortcut, optional desktop shortcut, an uninstaller in
; Settings > Apps. Build by hand: iscc /DAppVersion=0.1.0 packaging\windows\desktop-uploader.iss

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
; The setup program's own version resource (the app's exes get theirs from the PyInstaller spec).
VersionInfoVersion={#AppVersion}
VersionInfoProductName={#AppName}
VersionInfoCompany=Desktop Uploader team
VersionInfoDescription={#AppName} installer
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

[UninstallDelete]
; The sandbox's storage server, unpacked on first use (about 150 MB): the app makes it again if
; needed, so it goes with the app. (For the user who uninstalls; see the message below.)
Type: filesandordirs; Name: "{localappdata}\desktop-uploader\Cache"

[CustomMessages]
DataLeft=Desktop Uploader has been removed.%n%nYour settings, upload history and logs are still in%n%1%nand the access keys you saved are in Windows Credential Manager (entries named "desktop-uploader").%n%nDelete that folder and those entries if you want no trace left; keep them if you will install the app again.

[Code]
{ What stays behind after uninstalling, and where: the per-user data is the user's, so it is not
  deleted unasked (a reinstall picks up settings and resumable uploads), but they are told. }
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if (CurUninstallStep = usPostUninstall) and DirExists(ExpandConstant('{localappdata}\desktop-uploader')) then
    SuppressibleMsgBox(FmtMessage(CustomMessage('DataLeft'), [ExpandConstant('{localappdata}\desktop-uploader')]),
      mbInformation, MB_OK, IDOK);
end;
