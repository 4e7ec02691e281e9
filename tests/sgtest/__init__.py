"""Helpers shared by several test files (no tests here): run builders, scripted
models, page and browser helpers. Importable because tests/ is on sys.path (conftest)."""
