"""Sweeps: `sim2real <stage> -m ...` runs Hydra multirun jobs (docs/sweeps.md); `sweep-summary` reads them."""
