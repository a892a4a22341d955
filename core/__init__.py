"""The floor under every layer: errors, settings, process identity, version, the plugin registry, kits.

Imports only the standard library, so every layer (and the worker, on any Python it runs) can stand on it.
"""
