"""sim2real: distil a privileged simulation expert into an observation-only robot policy."""

__version__ = "0.1.0"
