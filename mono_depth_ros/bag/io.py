"""Reading, writing and topic detection for ROS 2 bags with ``rosbags`` (no ROS install needed): the one
import for bag users (``from mono_depth_ros.bag import io as bio``), re-exporting :mod:`.reader`,
:mod:`.writer` and :mod:`.topics`.

Reading (:class:`BagReader`): a rosbag2 directory (``metadata.yaml`` + MCAP or sqlite3 files) or a
bare ``.mcap`` / ``.db3`` file (rosbags >= 0.10 opens both through ``AnyReader``). Every failure is a
:class:`BagError` (a ``ValueError``: ``mono-depth`` prints it as one line and exits with status 2)
that names the bag or the topic: a missing path, an unknown format, a corrupt or truncated file
(e.g. an MCAP cut short by a crash has no footer: ``mcap recover`` / ``ros2 bag reindex`` repair it),
a message that does not deserialise.

Writing (:class:`BagWriter`): a rosbag2 directory (version 8 metadata, MCAP storage by default) that
``ros2 bag play`` takes directly. It is written into a hidden temporary directory beside the target
and renamed into place only when complete, so an interrupted run leaves a readable bag or none.
An existing output is replaced only with ``overwrite`` and only if it is a bag (:func:`is_bag_path`:
a directory of ``metadata.yaml`` + ``.mcap``/``.db3`` files and nothing else, or a single bag file);
the output may never be, contain or lie inside a protected input (:func:`check_output_bag`).

Decoding and building messages live in :mod:`mono_depth_ros.msgs` (re-exported here for the old names).
"""
from __future__ import annotations

from ..msgs.fields import (CAMERA_INFO, IMAGE, POINTCLOUD2, POINTFIELD_DTYPES, TF_MESSAGE, MessageError,  # noqa: F401
                           MessageFactory, camera_info_K, depth_image_to_metres, get_typestore, image_to_array,
                           ns_to_sec_nsec, pointcloud2_xyz, stamp_to_ns)
from .reader import COMPRESSED_IMAGE, BagError, BagReader, TopicInfo  # noqa: F401
from .topics import detect_camera_info_topic, detect_image_topic, detect_lidar_topic  # noqa: F401
from .writer import BagWriter, check_output_bag, is_bag_path, qos_profile  # noqa: F401
