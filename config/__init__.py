"""Typed settings for HotSpot."""

from config.settings import Limits, Settings, SettingsError, load_settings

__all__ = ["Limits", "Settings", "SettingsError", "load_settings"]
