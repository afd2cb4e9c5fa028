"""Icons and desktop files, shipped inside the package as ``desktop_uploader.resources``."""
