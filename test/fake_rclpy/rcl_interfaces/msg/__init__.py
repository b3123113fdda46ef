from _fake_msgs import export

globals().update(export("rcl_interfaces", ["ParameterDescriptor", "FloatingPointRange", "IntegerRange",
                                           "SetParametersResult", "ParameterType", "ParameterEvent"]))
