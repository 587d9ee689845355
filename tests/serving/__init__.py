"""Tests of the serving package (recommend CLI, HTTP app)."""
