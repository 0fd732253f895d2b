"""Mutation testing of the modules that decide things (`make mutation`, docs/testing.md)."""
