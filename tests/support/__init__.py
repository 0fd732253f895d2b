"""Reusable test helpers (not tests themselves): e.g. `aws_fault_proxy.AwsFaultProxy`."""
