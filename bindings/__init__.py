"""Bindings: the wire contract every language speaks (schemas, codecs, envelope, transports).

Imports nothing from the rest of Satchel but `satchel.errors`; the worker imports this package.
"""
