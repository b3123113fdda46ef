"""Re-export of :mod:`mono_depth_ros.msgs.conversions` (the message layer moved below ``ros/``)."""
from ..msgs.conversions import *  # noqa: F401,F403
from ..msgs.conversions import __all__  # noqa: F401
from ..msgs.conversions import _u8_array, _u8_numpy, _u8_view  # noqa: F401
