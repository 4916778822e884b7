"""Validation of the exported artifact under domain randomization, the deployment gate and the report."""
