"""ROS 2 glue: the rclpy node and ROS message conversions (the only rclpy-aware code)."""
