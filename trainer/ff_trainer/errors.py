"""Trainer errors, each mapped to an exit code the executor and Kubernetes act on."""

from ff_core.errors import FlopsFitError


class TrainerError(FlopsFitError):
    """Base of the trainer's deliberate errors."""


class ConfigError(TrainerError):
    """A bad sweep, plugin or size: permanent (exit 3)."""


class PluginError(ConfigError):
    """A plugin path that does not resolve, or an object that does not satisfy its protocol."""


class PluginImportError(PluginError):
    """A plugin whose module is not installed in this environment (fine on a laptop that only submits)."""
