"""Packager: turns a Python function into a bundle (declaration, code, artifacts, environment, stores)."""
