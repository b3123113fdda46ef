"""mono_depth_ros: monocular depth estimation (Eigen et al., NIPS 2014) for ROS 2.

The package is ROS-agnostic except for ``mono_depth_ros.ros`` (the rclpy node): importing it never
imports rclpy, torch or onnxruntime until a feature that needs them is used.
"""
__version__ = "0.1.0"
