"""A real S3 store (SeaweedFS) and the upload API on loopback: the app's default and the tests' world."""
