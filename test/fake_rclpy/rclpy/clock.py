"""rclpy.clock.Clock: now() -> rclpy.time.Time.  Test hook: ``Clock.frozen_ns`` fixes the time."""
import time as _time
from enum import IntEnum

from rclpy.time import Time


class ClockType(IntEnum):
    UNINITIALIZED = 0
    ROS_TIME = 1
    SYSTEM_TIME = 2
    STEADY_TIME = 3


class Clock:
    frozen_ns = None  # tests: set to an int to freeze every clock

    def __init__(self, *, clock_type=ClockType.SYSTEM_TIME):
        self.clock_type = clock_type

    def now(self):
        ns = Clock.frozen_ns if Clock.frozen_ns is not None else _time.time_ns()
        return Time(nanoseconds=ns, clock_type=self.clock_type)


class ROSClock(Clock):
    def __init__(self):
        super().__init__(clock_type=ClockType.ROS_TIME)
