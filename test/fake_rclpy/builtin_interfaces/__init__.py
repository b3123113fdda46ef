"""Fake ROS 2 package (tests only)."""
