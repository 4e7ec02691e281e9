"""Test-only plugins: importable by name when ``tests/plugins`` is on ``sys.path``."""
