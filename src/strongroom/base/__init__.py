"""Base layer: configuration, errors, logging and metrics, used by every other layer."""
