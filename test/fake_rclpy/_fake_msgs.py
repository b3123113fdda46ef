"""rclpy-style message classes generated from the real .msg definitions (rosbags' typestore).

Field names, types, constants and defaults come from ``get_typestore(Stores.ROS2_HUMBLE)``; the
setters follow rosidl_generator_py's ``_msg.py.em`` template (what a real ROS 2 message accepts):

* integers: ``int`` in range (numpy integers are refused), floats: ``float``, bool: ``bool``;
* numeric ``T[]`` sequences: an ``array.array`` of the right typecode, or a Sequence of Python
  scalars (a numpy array is *not* a Sequence and is refused), stored as ``array.array``;
* numeric ``T[N]`` arrays: a numpy array of the right dtype and size, or a Sequence of length N,
  stored as numpy;
* nested messages: an instance of the exact class; constructors refuse unknown keywords.
"""
from __future__ import annotations

import array
from collections import UserList, UserString
from collections.abc import Sequence, Set
from typing import Any, Dict

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_typestore

_TS = get_typestore(Stores.ROS2_HUMBLE)

_INT_BOUNDS = {"int8": (-2**7, 2**7), "uint8": (0, 2**8), "int16": (-2**15, 2**15), "uint16": (0, 2**16),
               "int32": (-2**31, 2**31), "uint32": (0, 2**32), "int64": (-2**63, 2**63),
               "uint64": (0, 2**64), "char": (0, 256)}
_TYPECODE = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
             "int64": "q", "uint64": "Q", "float32": "f", "float64": "d"}
_CLASSES: Dict[str, type] = {}


def _is_seq(v: Any) -> bool:
    return (isinstance(v, (Sequence, Set, UserList)) and not isinstance(v, (str, UserString)))


def _scalar_ok(base: str, v: Any) -> bool:
    if base in _INT_BOUNDS:
        lo, hi = _INT_BOUNDS[base]
        return isinstance(v, int) and lo <= v < hi
    if base in ("float32", "float64"):
        return isinstance(v, float)
    if base == "bool":
        return isinstance(v, bool)
    if base == "string":
        return isinstance(v, str)
    if base == "byte":
        return isinstance(v, bytes) and len(v) == 1
    raise TypeError(base)


def _default(node: Any) -> Any:
    kind, detail = node
    if kind == Nodetype.BASE:
        base = detail[0]
        return {"bool": False, "string": "", "byte": b"\x00", "float32": 0.0, "float64": 0.0}.get(base, 0)
    if kind == Nodetype.NAME:
        return message_class(detail)()
    sub, size = detail
    if sub[0] == Nodetype.BASE and sub[1][0] in _TYPECODE:
        if kind == Nodetype.ARRAY:
            return np.zeros(size, dtype=np.dtype(_TYPECODE[sub[1][0]]))
        return array.array(_TYPECODE[sub[1][0]])
    if kind == Nodetype.ARRAY:
        return [_default(sub) for _ in range(size)]
    return []


def _check(cls_name: str, name: str, node: Any, value: Any) -> Any:
    """Validate ``value`` as rosidl would and return what the message stores."""
    kind, detail = node
    err = f"{cls_name}.{name}: "
    if kind == Nodetype.BASE:
        if not _scalar_ok(detail[0], value):
            raise AssertionError(err + f"must be of type {detail[0]}, got {type(value).__name__} {value!r}")
        return value
    if kind == Nodetype.NAME:
        if not isinstance(value, message_class(detail)):
            raise AssertionError(err + f"must be a sub message of type {detail}, got {type(value).__name__}")
        return value
    sub, size = detail
    numeric = sub[0] == Nodetype.BASE and sub[1][0] in _TYPECODE
    if numeric and kind == Nodetype.ARRAY and isinstance(value, np.ndarray):
        if value.dtype != np.dtype(_TYPECODE[sub[1][0]]) or value.size != size:
            raise AssertionError(err + f"numpy array must be {sub[1][0]} of size {size}")
        return value
    if numeric and kind == Nodetype.SEQUENCE and isinstance(value, array.array):
        if value.typecode != _TYPECODE[sub[1][0]]:
            raise AssertionError(err + f"array.array must have type code {_TYPECODE[sub[1][0]]!r}")
        if size and len(value) > size:
            raise AssertionError(err + f"length must be <= {size}")
        return value
    if not _is_seq(value):
        raise AssertionError(err + f"must be a set or sequence, got {type(value).__name__}")
    if kind == Nodetype.ARRAY and len(value) != size:
        raise AssertionError(err + f"must have length {size}")
    if kind == Nodetype.SEQUENCE and size and len(value) > size:
        raise AssertionError(err + f"length must be <= {size}")
    for v in value:
        if sub[0] == Nodetype.BASE:
            if not _scalar_ok(sub[1][0], v):
                raise AssertionError(err + f"each value must be of type {sub[1][0]}, got {type(v).__name__}")
        elif not isinstance(v, message_class(sub[1])):
            raise AssertionError(err + f"each value must be a {sub[1]}")
    if numeric:
        tc = _TYPECODE[sub[1][0]]
        return np.array(value, dtype=np.dtype(tc)) if kind == Nodetype.ARRAY else array.array(tc, value)
    return list(value)


class FakeMessage:
    _msgtype: str = ""
    _fielddefs: list = []
    __slots__ = ()

    def __init__(self, **kwargs: Any) -> None:
        names = [n for n, _ in self._fielddefs]
        unknown = set(kwargs) - set(names)
        assert not unknown, f"Invalid arguments passed to constructor: {', '.join(sorted(unknown))}"
        for n, node in self._fielddefs:
            setattr(self, n, kwargs[n] if n in kwargs else _default(node))

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, self.__class__):
            return False
        for n, _ in self._fielddefs:
            a, b = getattr(self, n), getattr(other, n)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b)):
                    return False
            elif a != b:
                return False
        return True

    def __repr__(self) -> str:
        return f"{self._msgtype}({', '.join(f'{n}=...' for n, _ in self._fielddefs)})"

    @classmethod
    def get_fields_and_field_types(cls) -> Dict[str, str]:
        return {n: str(node) for n, node in cls._fielddefs}


def _prop(cls_name: str, name: str, node: Any) -> property:
    slot = "_" + name

    def get(self: Any) -> Any:
        return getattr(self, slot)

    def set_(self: Any, value: Any) -> None:
        object.__setattr__(self, slot, _check(cls_name, name, node, value))

    return property(get, set_)


def message_class(msgtype: str) -> type:
    """The fake rclpy class of 'pkg/msg/Name'."""
    cls = _CLASSES.get(msgtype)
    if cls is not None:
        return cls
    consts, fields = _TS.fielddefs[msgtype]
    name = msgtype.rsplit("/", 1)[-1]
    ns: Dict[str, Any] = {"_msgtype": msgtype, "_fielddefs": list(fields),
                          "__slots__": tuple("_" + n for n, _ in fields)}
    for cname, ctype, cval in consts:
        ns[cname] = bytes([cval]) if ctype == "byte" else cval
    for fname, node in fields:
        ns[fname] = _prop(name, fname, node)
    cls = type(name, (FakeMessage,), ns)
    cls.__module__ = msgtype.split("/")[0] + ".msg"
    _CLASSES[msgtype] = cls
    return cls


def export(package: str, names: list) -> Dict[str, type]:
    return {n: message_class(f"{package}/msg/{n}") for n in names}


def from_rosbags(m: Any) -> Any:
    """A rosbags message -> the fake rclpy message of the same type (independent of conversions.py)."""
    cls = message_class(m.__msgtype__)
    kw = {}
    for name, _ in cls._fielddefs:
        v = getattr(m, name)
        if hasattr(v, "__msgtype__"):
            v = from_rosbags(v)
        elif isinstance(v, np.ndarray):
            v = array.array("B", v.tobytes()) if v.dtype == np.uint8 else [float(x) for x in v]
        elif isinstance(v, list):
            v = [from_rosbags(x) for x in v]
        kw[name] = v
    return cls(**kw)
