"""rclpy.executors: only the exception a spinning executor raises on external shutdown."""


class ExternalShutdownException(Exception):
    """Context has been shutdown."""
