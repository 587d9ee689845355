"""Typed configuration: ``from conf import load_settings``."""

from conf.settings import Settings, TableSpec, load_settings

__all__ = ["Settings", "TableSpec", "load_settings"]
