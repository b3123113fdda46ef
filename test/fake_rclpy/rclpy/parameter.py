"""rclpy.parameter.Parameter (rclpy/parameter.py): name, type_, value; Type inferred from the value."""
from enum import Enum

from rcl_interfaces.msg import ParameterType

PARAMETER_SEPARATOR_STRING = '.'


class Parameter:

    class Type(Enum):
        NOT_SET = ParameterType.PARAMETER_NOT_SET
        BOOL = ParameterType.PARAMETER_BOOL
        INTEGER = ParameterType.PARAMETER_INTEGER
        DOUBLE = ParameterType.PARAMETER_DOUBLE
        STRING = ParameterType.PARAMETER_STRING
        BYTE_ARRAY = ParameterType.PARAMETER_BYTE_ARRAY
        BOOL_ARRAY = ParameterType.PARAMETER_BOOL_ARRAY
        INTEGER_ARRAY = ParameterType.PARAMETER_INTEGER_ARRAY
        DOUBLE_ARRAY = ParameterType.PARAMETER_DOUBLE_ARRAY
        STRING_ARRAY = ParameterType.PARAMETER_STRING_ARRAY

        @classmethod
        def from_parameter_value(cls, parameter_value):
            if parameter_value is None:
                return Parameter.Type.NOT_SET
            if isinstance(parameter_value, bool):
                return Parameter.Type.BOOL
            if isinstance(parameter_value, int):
                return Parameter.Type.INTEGER
            if isinstance(parameter_value, float):
                return Parameter.Type.DOUBLE
            if isinstance(parameter_value, str):
                return Parameter.Type.STRING
            if isinstance(parameter_value, (list, tuple)):
                if all(isinstance(v, bool) for v in parameter_value):
                    return Parameter.Type.BOOL_ARRAY
                if all(isinstance(v, int) for v in parameter_value):
                    return Parameter.Type.INTEGER_ARRAY
                if all(isinstance(v, float) for v in parameter_value):
                    return Parameter.Type.DOUBLE_ARRAY
                if all(isinstance(v, str) for v in parameter_value):
                    return Parameter.Type.STRING_ARRAY
            raise TypeError(f"The given value is not one of the allowed types '{parameter_value}'.")

        def check(self, parameter_value):
            return Parameter.Type.from_parameter_value(parameter_value) == self

    def __init__(self, name, type_=None, value=None):
        if type_ is None:
            type_ = Parameter.Type.from_parameter_value(value)
        if not isinstance(type_, Parameter.Type):
            raise TypeError("type must be an instance of '{}'".format(repr(Parameter.Type)))
        if not type_.check(value):
            raise ValueError(f"Type '{type_}' and value '{value}' do not agree")
        self._type_ = type_
        self._name = name
        self._value = value

    @property
    def name(self):
        return self._name

    @property
    def type_(self):
        return self._type_

    @property
    def value(self):
        return self._value

    def __repr__(self):
        return f'Parameter({self._name!r}, {self._type_}, {self._value!r})'
