"""Sluice: the operator CLI and the local runtime."""
