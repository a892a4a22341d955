"""Flows: the engine that trains models and produces bundles (a later issue)."""
