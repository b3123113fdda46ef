from _fake_msgs import export

globals().update(export("builtin_interfaces", ["Time"]))
