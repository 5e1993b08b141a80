"""Strongroom: multi-tenant, encrypted file storage and sharing."""

__version__ = "0.1.0"
