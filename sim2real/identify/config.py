"""`sim2real identify log=PATH.zarr`: which parameters to fit to a deployment log, and how."""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.parameters import FixedDynamics


@dataclass
class IdentifyConfig:
    log: str | None = None  # the deployment log (<run_dir>/deploy/<timestamp>.zarr) or any demo store
    # continuous parameters to fit; None: every physical parameter of envs.parameters not in `fixed`
    parameters: list[str] | None = None
    # known values, e.g. identify.fixed.mass_scale=1.1 (a weighed robot); None: fitted
    fixed: FixedDynamics = field(default_factory=FixedDynamics)
    segment_steps: int = 20  # control steps per shooting segment
    segments: int = 16  # segments spread over the log
    max_latency: int = 5  # sensor latencies searched, 0..max_latency control steps
    max_iter: int = 40  # least-squares iterations at the chosen latency
    prior_std: float = 1.0  # weak prior around each nominal value (what a non-identified value keeps)
    range_ci: float = 2.0  # re-centred range half-width: this many 95% CI half-widths...
    range_min: float = 0.05  # ...and at least this fraction of the value
    out: str | None = None  # default <run_dir>/identify

    def __post_init__(self) -> None:
        for key, least in (("segment_steps", 2), ("segments", 1), ("max_iter", 1)):
            if getattr(self, key) < least:
                raise ValueError(f"identify.{key}={getattr(self, key)} must be >= {least}")
        if self.max_latency < 0:
            raise ValueError(f"identify.max_latency={self.max_latency} must be >= 0")
        if self.prior_std <= 0 or self.range_ci <= 0 or self.range_min < 0:
            raise ValueError("identify.prior_std and identify.range_ci must be > 0, identify.range_min >= 0")
