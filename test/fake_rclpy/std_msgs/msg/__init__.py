from _fake_msgs import export

globals().update(export("std_msgs", ["Header"]))
