"""Re-export of :mod:`mono_depth_ros.params` (the node's parameters live below ``ros/`` so that the CLI
and the bag tools can use them without importing ``ros/``)."""
from ..params import (BACKENDS, COLORMAPS, DEFAULTS, DEPTH_ENCODINGS, DROP_POLICIES, OUTPUTS, PARAMS,  # noqa: F401
                      PRECISIONS, RELIABILITIES, RUNTIME, SPECS, NodeConfig, ParamSpec, validate_changes,
                      validate_config, validate_value)
