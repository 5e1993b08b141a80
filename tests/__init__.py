"""Tests for Strongroom."""
