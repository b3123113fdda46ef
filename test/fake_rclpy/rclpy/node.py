"""Fake rclpy.node.Node with the real signatures of the calls the depth node makes.

Parameters follow rclpy's node.py: the type is inferred from the default value (static typing),
overrides (constructor ``parameter_overrides`` + ``--ros-args -p``) win at declaration, the
descriptor's read_only / integer_range / floating_point_range are applied (edges allowed, step
checked), then the on-set callbacks run; a failure at declaration raises, a failure in
set_parameters() is returned as an unsuccessful SetParametersResult.

The logger mimics rcutils_logger: throttle/once/skip_first filters, and the rule that one call
site must always pass the same filters (ValueError otherwise).  Emitted lines go to ``Node.logged``.
"""
import inspect
import math
import time

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import ROSClock
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              NotInitializedException, ParameterAlreadyDeclaredException,
                              ParameterNotDeclaredException)
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile

monotonic = time.monotonic  # tests may replace it to step the logger's throttle clock


def _validate_qos(qos_or_depth):
    if isinstance(qos_or_depth, QoSProfile):
        return qos_or_depth
    if isinstance(qos_or_depth, int) and not isinstance(qos_or_depth, bool):
        if qos_or_depth < 0:
            raise ValueError('history depth must be greater than or equal to zero')
        return QoSProfile(depth=qos_or_depth)
    raise TypeError('Expected QoSProfile or int, but received {!r}'.format(type(qos_or_depth)))


def _check_msg_type(msg_type):
    if not (isinstance(msg_type, type) and getattr(msg_type, '_msgtype', '')):
        raise AttributeError(f'{msg_type!r} is not a ROS 2 message type')


def _resolve(namespace, topic):
    if not topic or ' ' in topic or topic.endswith('/') and topic != '/':
        raise ValueError(f'invalid topic name {topic!r}')
    if topic.startswith('/'):
        return topic
    if topic.startswith('~'):
        raise ValueError('private topics are not modelled')
    return (namespace.rstrip('/') + '/' + topic) if namespace else '/' + topic


class Publisher:
    def __init__(self, msg_type, topic, qos_profile):
        self.msg_type = msg_type
        self.topic = topic
        self.qos_profile = qos_profile
        self.published = []          # test hook
        self.subscription_count = 0  # test hook: what get_subscription_count() reports
        self.destroyed = False

    @property
    def topic_name(self):
        return self.topic

    def publish(self, msg):
        if self.destroyed:
            raise RuntimeError('publisher was destroyed')
        if not isinstance(msg, self.msg_type):
            raise TypeError(f'Expected {self.msg_type}, got {type(msg)}')
        self.published.append(msg)

    def get_subscription_count(self):
        return self.subscription_count

    def destroy(self):
        self.destroyed = True


class Subscription:
    def __init__(self, msg_type, topic, callback, qos_profile, raw):
        self.msg_type = msg_type
        self.topic = topic
        self.callback = callback
        self.qos_profile = qos_profile
        self.raw = raw
        self.destroyed = False

    @property
    def topic_name(self):
        return self.topic

    def deliver(self, msg):  # test hook: what the executor does when a message arrives
        assert isinstance(msg, self.msg_type), f'{type(msg)} delivered to a {self.msg_type} subscription'
        self.callback(msg)

    def destroy(self):
        self.destroyed = True


class Timer:
    def __init__(self, period_sec, callback):
        self.timer_period_ns = int(float(period_sec) * 1e9)
        self.callback = callback
        self.cancelled = False

    def fire(self):  # test hook
        self.callback()

    def cancel(self):
        self.cancelled = True

    def reset(self):
        self.cancelled = False

    def destroy(self):
        self.cancelled = True


_FILTERS = {'throttle': ('throttle_duration_sec', 'throttle_time_source_type'),
            'skip_first': ('skip_first',), 'once': ('once',)}


class Logger:
    def __init__(self, name, sink):
        self.name = name
        self._sink = sink
        self._contexts = {}

    def get_child(self, name):
        return Logger(self.name + '.' + name, self._sink)

    def log(self, message, severity, **kwargs):
        for k in kwargs:
            if k not in ('throttle_duration_sec', 'throttle_time_source_type', 'skip_first', 'once', 'name'):
                raise TypeError(f'parameter "{k}" is not one of the recognized logging options')
        frame = inspect.currentframe().f_back.f_back
        caller = (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
        ctx = self._contexts.get(caller)
        if ctx is None:
            ctx = self._contexts[caller] = {'severity': severity, 'kwargs': dict(kwargs), 'last': None,
                                            'count': 0}
        else:
            if severity != ctx['severity']:
                raise ValueError('Logger severity cannot be changed between calls.')
            if kwargs != ctx['kwargs']:
                raise ValueError('Logging filter parameters cannot be changed between calls.')
        ctx['count'] += 1
        if kwargs.get('once') and ctx['count'] > 1:
            return False
        if kwargs.get('skip_first') and ctx['count'] == 1:
            return False
        if 'throttle_duration_sec' in kwargs:
            now = monotonic()
            if ctx['last'] is not None and now - ctx['last'] < float(kwargs['throttle_duration_sec']):
                return False
            ctx['last'] = now
        self._sink.append((severity, str(message)))
        return True

    def debug(self, message, **kwargs):
        return self.log(message, 'DEBUG', **kwargs)

    def info(self, message, **kwargs):
        return self.log(message, 'INFO', **kwargs)

    def warning(self, message, **kwargs):
        return self.log(message, 'WARN', **kwargs)

    def warn(self, message, **kwargs):
        return self.log(message, 'WARN', **kwargs)

    def error(self, message, **kwargs):
        return self.log(message, 'ERROR', **kwargs)

    def fatal(self, message, **kwargs):
        return self.log(message, 'FATAL', **kwargs)


class Node:
    PARAM_REL_TOL = 1e-6

    def __init__(self, node_name, *, context=None, cli_args=None, namespace=None, use_global_arguments=True,
                 enable_rosout=True, start_parameter_services=True, parameter_overrides=None,
                 allow_undeclared_parameters=False, automatically_declare_parameters_from_overrides=False):
        if not rclpy.ok():
            raise NotInitializedException('cannot create node')
        self._name = node_name
        self._namespace = namespace or ''
        self._parameters = {}
        self._descriptors = {}
        self._on_set_parameters_callbacks = []
        self._overrides = dict(rclpy.global_overrides) if use_global_arguments else {}
        self._overrides.update({p.name: p.value for p in (parameter_overrides or [])})
        self._clock = ROSClock()
        self.logged = []
        self._logger = Logger(node_name, self.logged)
        self.publishers = []
        self.subscriptions = []
        self.timers = []
        self.destroyed = False
        # rclpy declares use_sim_time in TimeSource
        self.declare_parameter('use_sim_time', False)

    # ---- basics ---------------------------------------------------------------------
    def get_name(self):
        return self._name

    def get_namespace(self):
        return self._namespace or '/'

    def get_logger(self):
        return self._logger

    def get_clock(self):
        return self._clock

    # ---- parameters -----------------------------------------------------------------
    def declare_parameter(self, name, value=None, descriptor=None, ignore_override=False):
        if descriptor is None:
            descriptor = ParameterDescriptor()
        if not isinstance(descriptor, ParameterDescriptor):
            raise TypeError(f'Third element {descriptor} is not a ParameterDescriptor.')
        if not descriptor.dynamic_typing:
            descriptor.type = Parameter.Type.from_parameter_value(value).value
            if descriptor.type == Parameter.Type.NOT_SET.value:
                raise ValueError('Cannot declare a statically typed parameter with default value '
                                 'of type PARAMETER_NOT_SET')
        if name in self._parameters:
            raise ParameterAlreadyDeclaredException([name])
        if not ignore_override and name in self._overrides:
            value = self._overrides[name]
        param = Parameter(name, value=value)
        result = self._apply_descriptor(param, descriptor, check_read_only=False)
        if result.successful:
            result = self._call_on_set([param])
        if not result.successful:
            if result.reason.startswith('Wrong parameter type'):
                raise InvalidParameterTypeException(param, Parameter.Type(descriptor.type).name)
            raise InvalidParameterValueException(name, value, result.reason)
        descriptor.name = name
        self._descriptors[name] = descriptor
        self._parameters[name] = param
        return param

    def has_parameter(self, name):
        return name in self._parameters

    def get_parameter(self, name):
        if name not in self._parameters:
            raise ParameterNotDeclaredException(name)
        return self._parameters[name]

    def describe_parameter(self, name):
        if name not in self._descriptors:
            raise ParameterNotDeclaredException(name)
        return self._descriptors[name]

    def add_on_set_parameters_callback(self, callback):
        self._on_set_parameters_callbacks.insert(0, callback)

    def remove_on_set_parameters_callback(self, callback):
        self._on_set_parameters_callbacks.remove(callback)

    def set_parameters(self, parameter_list):
        results = []
        for param in parameter_list:
            if not isinstance(param, Parameter):
                raise TypeError("parameter must be instance of type '{}'".format(repr(Parameter)))
            if param.name not in self._parameters:
                raise ParameterNotDeclaredException([param.name])
            result = self._apply_descriptor(param, self._descriptors[param.name], check_read_only=True)
            if result.successful:
                result = self._call_on_set([param])
            if result.successful:
                self._parameters[param.name] = param
            results.append(result)
        return results

    def _call_on_set(self, params):
        for cb in self._on_set_parameters_callbacks:
            result = cb(params)
            if not isinstance(result, SetParametersResult):
                raise TypeError(f'on-set-parameters callback returned {type(result).__name__}, '
                                'expected SetParametersResult')
            if not result.successful:
                return result
        return SetParametersResult(successful=True)

    def _apply_descriptor(self, parameter, descriptor, check_read_only=True):
        if check_read_only and descriptor.read_only:
            return SetParametersResult(successful=False,
                                       reason=f'Trying to set a read-only parameter: {parameter.name}.')
        if not descriptor.dynamic_typing and parameter.type_.value != descriptor.type:
            return SetParametersResult(successful=False, reason=(
                f"Wrong parameter type, expected '{Parameter.Type(descriptor.type)}' got '{parameter.type_}'"))
        if parameter.type_ == Parameter.Type.INTEGER and descriptor.integer_range:
            r = descriptor.integer_range[0]
            lo, hi = min(r.from_value, r.to_value), max(r.from_value, r.to_value)
            if parameter.value in (lo, hi):
                return SetParametersResult(successful=True)
            if not lo < parameter.value < hi:
                return SetParametersResult(successful=False, reason=(
                    f'Parameter {parameter.name} out of range. Min: {lo}, Max: {hi}, value: {parameter.value}'))
            if r.step != 0 and (parameter.value - lo) % r.step != 0:
                return SetParametersResult(successful=False, reason=(
                    f'The parameter value for {parameter.name} is not a valid step.'))
        if parameter.type_ == Parameter.Type.DOUBLE and descriptor.floating_point_range:
            r = descriptor.floating_point_range[0]
            lo, hi = min(r.from_value, r.to_value), max(r.from_value, r.to_value)
            v = parameter.value
            if math.isclose(v, lo, rel_tol=self.PARAM_REL_TOL) or math.isclose(v, hi, rel_tol=self.PARAM_REL_TOL):
                return SetParametersResult(successful=True)
            if not lo < v < hi:
                return SetParametersResult(successful=False, reason=(
                    f'Parameter {parameter.name} out of range Min: {lo}, Max: {hi}, value: {v}'))
            if r.step != 0.0:
                n = round((v - lo) / r.step)
                if not math.isclose(lo + n * r.step, v, rel_tol=self.PARAM_REL_TOL):
                    return SetParametersResult(successful=False, reason=(
                        f'The parameter value for {parameter.name} is not close enough to a valid step.'))
        return SetParametersResult(successful=True)

    # ---- entities -------------------------------------------------------------------
    def create_publisher(self, msg_type, topic, qos_profile, *, callback_group=None, event_callbacks=None,
                         qos_overriding_options=None, publisher_class=None):
        qos_profile = _validate_qos(qos_profile)
        _check_msg_type(msg_type)
        pub = Publisher(msg_type, _resolve(self._namespace, topic), qos_profile)
        self.publishers.append(pub)
        return pub

    def create_subscription(self, msg_type, topic, callback, qos_profile, *, callback_group=None,
                            event_callbacks=None, qos_overriding_options=None, raw=False):
        qos_profile = _validate_qos(qos_profile)
        _check_msg_type(msg_type)
        if not callable(callback):
            raise TypeError('callback must be callable')
        sub = Subscription(msg_type, _resolve(self._namespace, topic), callback, qos_profile, raw)
        self.subscriptions.append(sub)
        return sub

    def create_timer(self, timer_period_sec, callback, callback_group=None, clock=None):
        timer = Timer(timer_period_sec, callback)
        self.timers.append(timer)
        return timer

    def destroy_publisher(self, publisher):
        publisher.destroy()
        return True

    def destroy_subscription(self, subscription):
        subscription.destroy()
        return True

    def destroy_timer(self, timer):
        timer.destroy()
        return True

    def destroy_node(self):
        for e in self.publishers + self.subscriptions + self.timers:
            e.destroy()
        self.destroyed = True

    # ---- test helpers ---------------------------------------------------------------
    def publisher(self, topic):
        """Test hook: the publisher of a fully resolved or relative topic name."""
        full = _resolve(self._namespace, topic)
        matches = [p for p in self.publishers if p.topic == full]
        assert matches, f'no publisher on {full}; have {[p.topic for p in self.publishers]}'
        return matches[-1]

    def subscription(self, topic):
        full = _resolve(self._namespace, topic)
        matches = [s for s in self.subscriptions if s.topic == full]
        assert matches, f'no subscription on {full}; have {[s.topic for s in self.subscriptions]}'
        return matches[-1]
