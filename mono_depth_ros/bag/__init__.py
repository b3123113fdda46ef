"""ROS 2 bag tools that need no ROS install (built on ``rosbags``).

* :mod:`.io` -- the one import for bag users, re-exporting :mod:`.reader` (rosbag2 MCAP / sqlite3
  directory, or a bare ``.mcap`` / ``.db3`` file, with clear errors), :mod:`.topics` (topic
  auto-detection), :mod:`.writer` (a crash-safe writer: a bag appears under its final name only once it
  is complete) and the message layer's names (:mod:`mono_depth_ros.msgs`).
* :mod:`.tf` -- a static transform tree (``/tf_static``) and transform composition.
* :mod:`.kitti2bag` -- KITTI raw drive -> rosbag2 MCAP.
* :mod:`.evaluate` -- ROS-agnostic evaluation: LiDAR ground truth, per-frame / total metrics under
  several protocols, CSV / JSON / markdown, plots (shared by ``mono-depth bag --eval`` and the
  live evaluator node).
* :mod:`.run` -- ``mono-depth bag``: a bag through the depth pipeline, into a depth bag.
"""
