"""Compatibility layers with other tools' APIs."""
