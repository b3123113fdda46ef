"""rclpy.exceptions (the ones the node can meet)."""


class NotInitializedException(Exception):
    def __init__(self, *args):
        Exception.__init__(self, 'rclpy.init() has not been called', *args)


class ParameterException(Exception):
    pass


class ParameterNotDeclaredException(ParameterException):
    def __init__(self, parameters, *args):
        Exception.__init__(self, 'Invalid access to undeclared parameter(s)', parameters, *args)


class ParameterAlreadyDeclaredException(ParameterException):
    def __init__(self, parameters, *args):
        Exception.__init__(self, 'Parameter(s) already declared', parameters, *args)


class InvalidParameterValueException(ParameterException):
    def __init__(self, parameter, value, reason, *args):
        Exception.__init__(self, 'Invalid parameter value ({value}) for parameter. Reason: {reason}'
                           .format(value=value, reason=reason), parameter, *args)


class InvalidParameterTypeException(ParameterException):
    def __init__(self, desired_parameter, expected_type, *args):
        Exception.__init__(self, f"Trying to set parameter '{desired_parameter._name}' to "
                           f"'{desired_parameter._value}' of type '{desired_parameter._type_.name}', "
                           f"expecting type '{expected_type}'", *args)


class ParameterImmutableException(ParameterException):
    def __init__(self, parameter, *args):
        Exception.__init__(self, 'Attempted to modify read-only parameter', parameter, *args)
