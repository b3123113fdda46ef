"""Fake diagnostic_updater (ros/diagnostics, ROS 2 Python): Updater(node, period=1.0) publishing
DiagnosticArray on /diagnostics from a timer, tasks added with add(task) or add(name, fn),
FrequencyStatusParam(freq_bound, tolerance=0.1, window_size=5), FrequencyStatus,
HeaderlessTopicDiagnostic(name, diag, freq), DiagnosticStatusWrapper.summary/add."""
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType


class DiagnosticStatusWrapper(DiagnosticStatus):
    __slots__ = ()

    def summary(self, *args):
        if len(args) == 1:
            self.level = args[0].level
            self.message = args[0].message
        elif len(args) == 2:
            self.level = args[0]
            self.message = str(args[1])

    def clearSummary(self):
        self.summary(DiagnosticStatus.OK, '')

    def mergeSummary(self, *args):
        if len(args) == 1:
            lvl, msg = args[0].level, args[0].message
        else:
            lvl, msg = args
        if (lvl[0] > DiagnosticStatus.OK[0]) == (self.level[0] > DiagnosticStatus.OK[0]):
            if len(self.message) > 0:
                self.message += '; '
            self.message += msg
        elif lvl[0] > self.level[0]:
            self.message = msg
        if lvl[0] > self.level[0]:
            self.level = lvl

    def add(self, key, val):
        self.values.append(KeyValue(key=key, value=val))


class DiagnosticTask:
    def __init__(self, name):
        self.name = name

    def getName(self):
        return self.name

    def run(self, stat):
        return stat


class FunctionDiagnosticTask(DiagnosticTask):
    def __init__(self, name, fn):
        DiagnosticTask.__init__(self, name)
        self.fn = fn

    def run(self, stat):
        return self.fn(stat)


class CompositeDiagnosticTask(DiagnosticTask):
    def __init__(self, name):
        DiagnosticTask.__init__(self, name)
        self.tasks = []

    def run(self, stat):
        combined = DiagnosticStatusWrapper()
        original = DiagnosticStatusWrapper()
        original.summary(stat)
        for task in self.tasks:
            stat.summary(original)
            stat = task.run(stat)
            combined.mergeSummary(stat)
        stat.summary(combined)
        return stat

    def addTask(self, t):
        self.tasks.append(t)


class DiagnosticTaskVector:
    class DiagnosticTaskInternal:
        def __init__(self, name, fn):
            self.name = name
            self.fn = fn

        def run(self, stat):
            stat.name = self.name
            return self.fn(stat)

    def __init__(self):
        self.tasks = []
        self.lock = threading.Lock()

    def addedTaskCallback(self, task):
        pass

    def add(self, *args):
        if len(args) == 1:
            task = DiagnosticTaskVector.DiagnosticTaskInternal(args[0].getName(), args[0].run)
        elif len(args) == 2:
            task = DiagnosticTaskVector.DiagnosticTaskInternal(args[0], args[1])
        else:
            raise TypeError('add(task) or add(name, fn)')
        with self.lock:
            self.tasks.append(task)
            self.addedTaskCallback(task)


class Updater(DiagnosticTaskVector):
    def __init__(self, node, period=1.0):
        DiagnosticTaskVector.__init__(self)
        self.node = node
        self.publisher = self.node.create_publisher(DiagnosticArray, '/diagnostics', 1)
        self.period_parameter = 'diagnostic_updater.period'
        self._period = self.node.declare_parameter(self.period_parameter, period).value
        self.timer = self.node.create_timer(self._period, self.update)
        self.verbose = False
        self.hwid = ''

    def update(self):
        status_vec = []
        with self.lock:
            for task in self.tasks:
                status = DiagnosticStatusWrapper()
                status.level = DiagnosticStatus.ERROR
                status.name = task.name
                status.message = 'No message was set'
                status.hardware_id = self.hwid
                status = task.run(status)
                status_vec.append(status)
        self.publish(status_vec)

    def force_update(self):
        self.update()

    def setHardwareID(self, hwid):
        self.hwid = hwid

    def publish(self, msg):
        if not isinstance(msg, list):
            msg = [msg]
        da = DiagnosticArray()
        da.header.stamp = self.node.get_clock().now().to_msg()
        for stat in msg:
            stat.name = self.node.get_name() + ': ' + stat.name  # the real one renames the status too
            db = DiagnosticStatus()
            db.name = stat.name
            db.message = stat.message
            db.hardware_id = stat.hardware_id
            db.values = stat.values
            db.level = stat.level
            da.status.append(db)
        self.publisher.publish(da)

    def addedTaskCallback(self, task):
        stat = DiagnosticStatusWrapper()
        stat.name = task.name
        stat.summary(DiagnosticStatus.OK, 'Node starting up')
        self.publish(stat)


class FrequencyStatusParam:
    def __init__(self, freq_bound, tolerance=0.1, window_size=5):
        self.freq_bound = freq_bound
        self.tolerance = tolerance
        self.window_size = window_size


class FrequencyStatus(DiagnosticTask):
    def __init__(self, params, name='FrequencyStatus'):
        DiagnosticTask.__init__(self, name)
        self.params = params
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        with self.lock:
            self.count = 0
            curtime = Clock(clock_type=ClockType.ROS_TIME).now()
            self.times = [curtime for _ in range(self.params.window_size)]
            self.seq_nums = [0 for _ in range(self.params.window_size)]
            self.hist_indx = 0

    def tick(self):
        with self.lock:
            self.count += 1

    def run(self, stat):
        with self.lock:
            curtime = Clock(clock_type=ClockType.ROS_TIME).now()
            events = self.count - self.seq_nums[self.hist_indx]
            window = (curtime - self.times[self.hist_indx]).nanoseconds * 1e-9
            freq = events / window  # as diagnostic_updater: no guard (a frozen test clock raises here)
            self.seq_nums[self.hist_indx] = self.count
            self.times[self.hist_indx] = curtime
            self.hist_indx = (self.hist_indx + 1) % self.params.window_size
            if events == 0:
                stat.summary(DiagnosticStatus.ERROR, 'No events recorded.')
            elif freq < self.params.freq_bound['min'] * (1 - self.params.tolerance):
                stat.summary(DiagnosticStatus.WARN, 'Frequency too low.')
            elif 'max' in self.params.freq_bound and freq > self.params.freq_bound['max'] * (
                    1 + self.params.tolerance):
                stat.summary(DiagnosticStatus.WARN, 'Frequency too high.')
            else:
                stat.summary(DiagnosticStatus.OK, 'Desired frequency met')
            stat.add('Events in window', '%d' % events)
            stat.add('Events since startup', '%d' % self.count)
            stat.add('Duration of window (s)', '%f' % window)
            stat.add('Actual frequency (Hz)', '%f' % freq)
            if 'max' in self.params.freq_bound and self.params.freq_bound['min'] == self.params.freq_bound['max']:
                stat.add('Target frequency (Hz)', '%f' % self.params.freq_bound['min'])
            if self.params.freq_bound['min'] > 0:
                stat.add('Minimum acceptable frequency (Hz)',
                         '%f' % (self.params.freq_bound['min'] * (1 - self.params.tolerance)))
            if 'max' in self.params.freq_bound:
                stat.add('Maximum acceptable frequency (Hz)',
                         '%f' % (self.params.freq_bound['max'] * (1 + self.params.tolerance)))
        return stat


class HeaderlessTopicDiagnostic(CompositeDiagnosticTask):
    def __init__(self, name, diag, freq):
        CompositeDiagnosticTask.__init__(self, name + ' topic status')
        self.diag = diag
        self.freq = FrequencyStatus(freq)
        self.addTask(self.freq)
        self.diag.add(self)

    def tick(self):
        self.freq.tick()

    def clear_window(self):
        self.freq.clear()
