"""Serving: REST and gRPC gateways over worker pools (a later issue)."""
