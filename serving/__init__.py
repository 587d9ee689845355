"""Serving: the application that answers requests with the champion generator (CLI and HTTP).

It sits beside ``jobs/`` (and may use it: the Feast store, the CLI helpers); ``models/`` stays the
numerical layer and imports neither.
"""
