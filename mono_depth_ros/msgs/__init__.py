"""The message layer: ROS message <-> numpy, for the node (rclpy) and the bag tools (rosbags) alike.

* :mod:`.conversions` -- images (decode any camera encoding, REP 118 depth encode/decode),
  camera_info <-> intrinsics, PointCloud2, headers; one-copy message building (:class:`MessageTypes`);
* :mod:`.fields` -- the bag tools' readers (PointCloud2 xyz, any Image as an array, ground-truth depth,
  camera_info K) and :class:`MessageFactory` (rosbags typestore messages, tf);
* :data:`DEPTH_TRAITS` -- the depth encodings, as depth_image_proc's ``depth_traits.hpp``.

Nothing here imports ``mono_depth_ros.ros``; rclpy is imported only by ``MessageTypes.from_rclpy``.
"""
from .conversions import DEPTH_TRAITS, DepthTraits, MessageTypes  # noqa: F401
