"""The upload engine: planning, strategies, retry, resume state. Pure Python, never Qt or a web server."""
