"""ROS 2 bag tools that need no ROS install (built on ``rosbags``).

* :mod:`.io` -- reading rosbag2 (MCAP / sqlite3 directory, or a bare ``.mcap`` / ``.db3`` file) with
  clear errors, topic auto-detection, message construction, and a crash-safe writer (a bag appears
  under its final name only once it is complete).
* :mod:`.tf` -- a static transform tree (``/tf_static``) and transform composition.
* :mod:`.kitti2bag` -- KITTI raw drive -> rosbag2 MCAP.
* :mod:`.evaluate` -- ROS-agnostic evaluation: LiDAR ground truth, per-frame / total metrics under
  several protocols, CSV / JSON / markdown, plots (shared by ``mono-depth bag --eval`` and the
  live evaluator node).
* :mod:`.run` -- ``mono-depth bag``: a bag through the depth pipeline, into a depth bag.
"""
