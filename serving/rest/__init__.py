"""The REST gateway's routes: invoke, the OpenAPI document, probes."""
