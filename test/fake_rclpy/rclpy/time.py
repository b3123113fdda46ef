"""rclpy.time.Time (nanoseconds, to_msg, from_msg) and rclpy.clock.Clock's now()."""
from builtin_interfaces.msg import Time as TimeMsg

S_TO_NS = 1000 * 1000 * 1000


class Time:
    def __init__(self, *, seconds=0, nanoseconds=0, clock_type=None):
        self._nanoseconds = int(seconds * S_TO_NS) + int(nanoseconds)

    @property
    def nanoseconds(self):
        return self._nanoseconds

    def seconds_nanoseconds(self):
        return divmod(self._nanoseconds, S_TO_NS)

    def to_msg(self):
        sec, nanosec = self.seconds_nanoseconds()
        return TimeMsg(sec=int(sec), nanosec=int(nanosec))

    @classmethod
    def from_msg(cls, msg, clock_type=None):
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec)

    def __sub__(self, other):
        from rclpy.duration import Duration
        return Duration(nanoseconds=self._nanoseconds - other._nanoseconds)
