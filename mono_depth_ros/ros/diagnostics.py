"""/diagnostics for depth_node without the ``diagnostic_updater`` package (not on PyPI).

The node uses ``diagnostic_updater`` when it is importable and this module otherwise; both publish
the same statuses on ``/diagnostics``.  This is a small re-implementation of the part of
diagnostic_updater (ROS 2 Jazzy, diagnostic_updater 4.0.0: _diagnostic_updater.py,
_update_functions.py, _publisher.py) the node uses, with the same observable behaviour:

* ``Updater(node, period=1.0)``: a ``DiagnosticArray`` publisher on ``/diagnostics`` (depth 1,
  reliable), the parameters ``diagnostic_updater.period`` (seconds between updates, read once at
  start-up) and ``diagnostic_updater.use_fqn`` (status names prefixed with the node's full name
  instead of its name), a timer on the node's clock; every status is named ``"<node>: <task>"`` and
  carries the hardware id; a task added is announced at once as OK "Node starting up".
* ``HeaderlessTopicDiagnostic(name, updater, FrequencyStatusParam(bounds, tolerance, window))``:
  the ``"<name> topic status"`` task, FrequencyStatus semantics: frequency = events / time over the
  last ``window_size`` updates; ERROR "No events recorded." when none, WARN "Frequency too low." below
  ``min * (1 - tolerance)``, WARN "Frequency too high." above ``max * (1 + tolerance)`` (only when
  ``bounds`` has a "max" key), else OK "Desired frequency met"; the same keys ("Events in window",
  "Events since startup", "Duration of window (s)", "Actual frequency (Hz)", "Target frequency (Hz)",
  "Minimum/Maximum acceptable frequency (Hz)") in the same "%f" format.

Only rclpy and message packages are imported.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.clock import Clock, ClockType

PERIOD_PARAMETER = "diagnostic_updater.period"
USE_FQN_PARAMETER = "diagnostic_updater.use_fqn"


class StatusWrapper:
    """What a task fills in: summary(level, message) and add(key, value) (DiagnosticStatusWrapper's API)."""

    def __init__(self, name: str, hardware_id: str) -> None:
        self.name = name
        self.hardware_id = hardware_id
        self.level = DiagnosticStatus.ERROR
        self.message = "No message was set"
        self.values: List[KeyValue] = []

    def summary(self, *args: Any) -> None:
        if len(args) == 1:
            self.level, self.message = args[0].level, args[0].message
        else:
            self.level, self.message = args[0], str(args[1])

    def add(self, key: str, value: Any) -> None:
        self.values.append(KeyValue(key=str(key), value=str(value)))

    def to_msg(self, prefix: str) -> Any:
        return DiagnosticStatus(level=self.level, name=f"{prefix}: {self.name}", message=self.message,
                                hardware_id=self.hardware_id, values=list(self.values))


class Updater:
    """diagnostic_updater.Updater's surface used by the node: setHardwareID, add, update, force_update."""

    def __init__(self, node: Any, period: float = 1.0) -> None:
        self.node = node
        self.hwid = ""
        self._tasks: List[Tuple[str, Callable[[Any], Any]]] = []
        self._lock = threading.Lock()
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 1)
        self.period = float(node.declare_parameter(
            PERIOD_PARAMETER, float(period),
            ParameterDescriptor(description="Seconds between /diagnostics updates (start-up only).",
                                floating_point_range=[FloatingPointRange(from_value=0.01, to_value=3600.0,
                                                                         step=0.0)])).value)
        if node.has_parameter(USE_FQN_PARAMETER):
            use_fqn = bool(node.get_parameter(USE_FQN_PARAMETER).value)
        else:
            use_fqn = bool(node.declare_parameter(
                USE_FQN_PARAMETER, False,
                ParameterDescriptor(description="Prefix status names with the node's full name "
                                                "(namespace/name) instead of its name.")).value)
        self.node_name = "/".join([node.get_namespace(), node.get_name()]) if use_fqn else node.get_name()
        self.timer = node.create_timer(self.period, self.update)

    def setHardwareID(self, hwid: str) -> None:  # noqa: N802 - diagnostic_updater's name
        self.hwid = hwid

    def add(self, *args: Any) -> None:
        """add(name, fn) or add(task) (a task has getName() and run(stat))."""
        if len(args) == 2:
            name, fn = args
        elif len(args) == 1:
            name, fn = args[0].getName(), args[0].run
        else:
            raise TypeError("add(task) or add(name, fn)")
        with self._lock:
            self._tasks.append((name, fn))
        stat = StatusWrapper(name, "")
        stat.summary(DiagnosticStatus.OK, "Node starting up")
        self._publish([stat])

    def update(self) -> None:
        with self._lock:
            tasks = list(self._tasks)
        stats = []
        for name, fn in tasks:
            stat = StatusWrapper(name, self.hwid)
            stats.append(fn(stat) or stat)
        self._publish(stats)

    def force_update(self) -> None:
        self.update()

    def _publish(self, stats: List[StatusWrapper]) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        array.status = [s.to_msg(self.node_name) for s in stats]
        self.publisher.publish(array)


class FrequencyStatusParam:
    def __init__(self, freq_bound: Dict[str, float], tolerance: float = 0.1, window_size: int = 5) -> None:
        self.freq_bound = freq_bound
        self.tolerance = tolerance
        self.window_size = window_size


class FrequencyStatus:
    """diagnostic_updater.FrequencyStatus: the rate of tick() calls over the last window_size updates."""

    def __init__(self, params: FrequencyStatusParam, name: str = "FrequencyStatus") -> None:
        self.name = name
        self.params = params
        self.lock = threading.Lock()
        self.clear()

    def getName(self) -> str:  # noqa: N802
        return self.name

    def clear(self) -> None:
        with self.lock:
            self.count = 0
            now = Clock(clock_type=ClockType.ROS_TIME).now()
            self.times = [now] * self.params.window_size
            self.seq_nums = [0] * self.params.window_size
            self.hist_indx = 0

    def tick(self) -> None:
        with self.lock:
            self.count += 1

    def run(self, stat: Any) -> Any:
        bound = self.params.freq_bound
        tol = self.params.tolerance
        with self.lock:
            now = Clock(clock_type=ClockType.ROS_TIME).now()
            events = self.count - self.seq_nums[self.hist_indx]
            window = (now - self.times[self.hist_indx]).nanoseconds * 1e-9
            freq = events / window if window > 0 else 0.0  # diagnostic_updater divides unguarded
            self.seq_nums[self.hist_indx] = self.count
            self.times[self.hist_indx] = now
            self.hist_indx = (self.hist_indx + 1) % self.params.window_size
            if events == 0:
                stat.summary(DiagnosticStatus.ERROR, "No events recorded.")
            elif freq < bound["min"] * (1 - tol):
                stat.summary(DiagnosticStatus.WARN, "Frequency too low.")
            elif "max" in bound and freq > bound["max"] * (1 + tol):
                stat.summary(DiagnosticStatus.WARN, "Frequency too high.")
            else:
                stat.summary(DiagnosticStatus.OK, "Desired frequency met")
            stat.add("Events in window", "%d" % events)
            stat.add("Events since startup", "%d" % self.count)
            stat.add("Duration of window (s)", "%f" % window)
            stat.add("Actual frequency (Hz)", "%f" % freq)
            if "max" in bound and bound["min"] == bound["max"]:
                stat.add("Target frequency (Hz)", "%f" % bound["min"])
            if bound["min"] > 0:
                stat.add("Minimum acceptable frequency (Hz)", "%f" % (bound["min"] * (1 - tol)))
            if "max" in bound:
                stat.add("Maximum acceptable frequency (Hz)", "%f" % (bound["max"] * (1 + tol)))
        return stat


class HeaderlessTopicDiagnostic:
    """The "<name> topic status" task: one FrequencyStatus (a CompositeDiagnosticTask of one task
    reports exactly that task's summary and values)."""

    def __init__(self, name: str, diag: Updater, freq: FrequencyStatusParam) -> None:
        self.name = name + " topic status"
        self.freq = FrequencyStatus(freq)
        diag.add(self)

    def getName(self) -> str:  # noqa: N802
        return self.name

    def run(self, stat: Any) -> Any:
        return self.freq.run(stat)

    def tick(self) -> None:
        self.freq.tick()

    def clear_window(self) -> None:
        self.freq.clear()
