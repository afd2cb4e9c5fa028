"""The reference upload API: the contract the app speaks, backed by real S3."""
