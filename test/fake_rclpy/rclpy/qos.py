"""rclpy.qos: QoSProfile(**kwargs) (history or depth required) and the policy enums."""
from enum import IntEnum


class InvalidQoSProfileException(Exception):
    def __init__(self, *args):
        Exception.__init__(self, 'Invalid QoSProfile', *args)


class QoSPolicyEnum(IntEnum):
    pass


class HistoryPolicy(QoSPolicyEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2
    UNKNOWN = 3


class ReliabilityPolicy(QoSPolicyEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2
    UNKNOWN = 3


class DurabilityPolicy(QoSPolicyEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2
    UNKNOWN = 3


QoSHistoryPolicy = HistoryPolicy
QoSReliabilityPolicy = ReliabilityPolicy
QoSDurabilityPolicy = DurabilityPolicy


class QoSProfile:
    __slots__ = ['_history', '_depth', '_reliability', '_durability']

    def __init__(self, **kwargs):
        allowed = {'history', 'depth', 'reliability', 'durability', 'lifespan', 'deadline', 'liveliness',
                   'liveliness_lease_duration', 'avoid_ros_namespace_conventions'}
        assert set(kwargs) <= allowed, 'Invalid arguments passed to constructor: %r' % kwargs.keys()
        if 'history' not in kwargs:
            if 'depth' not in kwargs:
                raise InvalidQoSProfileException('History and/or depth settings are required.')
            kwargs['history'] = HistoryPolicy.KEEP_LAST
        self.history = kwargs['history']
        if self.history == HistoryPolicy.KEEP_LAST and 'depth' not in kwargs:
            raise InvalidQoSProfileException('History set to KEEP_LAST without a depth setting.')
        self.depth = kwargs.get('depth', 10)
        self.reliability = kwargs.get('reliability', ReliabilityPolicy.RELIABLE)
        self.durability = kwargs.get('durability', DurabilityPolicy.VOLATILE)

    @property
    def history(self):
        return self._history

    @history.setter
    def history(self, value):
        assert isinstance(value, (HistoryPolicy, int))
        self._history = HistoryPolicy(value)

    @property
    def depth(self):
        return self._depth

    @depth.setter
    def depth(self, value):
        assert isinstance(value, int)
        self._depth = value

    @property
    def reliability(self):
        return self._reliability

    @reliability.setter
    def reliability(self, value):
        assert isinstance(value, (ReliabilityPolicy, int))
        self._reliability = ReliabilityPolicy(value)

    @property
    def durability(self):
        return self._durability

    @durability.setter
    def durability(self, value):
        assert isinstance(value, (DurabilityPolicy, int))
        self._durability = DurabilityPolicy(value)

    def __eq__(self, other):
        return isinstance(other, QoSProfile) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)


# rmw's qos_profile_sensor_data: best effort, keep last 5, volatile
qos_profile_sensor_data = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                     reliability=ReliabilityPolicy.BEST_EFFORT,
                                     durability=DurabilityPolicy.VOLATILE)
qos_profile_system_default = QoSProfile(history=HistoryPolicy.SYSTEM_DEFAULT)
