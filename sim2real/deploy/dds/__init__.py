"""DDS middleware for real robots: message profiles and a numpy codec (numpy only at import).

`PROFILES` maps "unitree_go" (Go2), "unitree_hg" (G1/H1-2) and "ros2" to their types, topics and
fields; `profile.codec(num_joints=...)` encodes commands and decodes states in numpy with the vendor's
CRC. `sim2real.deploy.dds.idl` (imports cyclonedds, the `dds` extra) declares the same types for the
DDS transport.
"""

from sim2real.deploy.dds.codec import CommandView, StateView, UnitreeCodec
from sim2real.deploy.dds.profiles import PROFILES, Profile, get_profile
from sim2real.deploy.dds.ros2 import Ros2Codec

__all__ = ["PROFILES", "CommandView", "Profile", "Ros2Codec", "StateView", "UnitreeCodec", "get_profile"]
