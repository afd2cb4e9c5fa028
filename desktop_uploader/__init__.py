"""Desktop Uploader: upload large model files to S3-compatible storage, resumably."""

__version__ = "0.1.0"
APP_NAME = "Desktop Uploader"
APP_ID = "desktop-uploader"
