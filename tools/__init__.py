"""Command-line helpers for working with a deployed environment."""
