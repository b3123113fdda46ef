from _fake_msgs import export

globals().update(export("diagnostic_msgs", ["DiagnosticArray", "DiagnosticStatus", "KeyValue"]))
