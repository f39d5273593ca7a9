"""Typed settings for HotSpot."""

from config.rates import Rates, RateSpec
from config.settings import Limits, Settings, SettingsError, load_settings

__all__ = ["Limits", "RateSpec", "Rates", "Settings", "SettingsError", "load_settings"]
