"""Topic auto-detection in a bag: the colour image topic, its camera_info and a LiDAR point cloud."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from ..msgs.fields import CAMERA_INFO, IMAGE, POINTCLOUD2
from .reader import COMPRESSED_IMAGE, BagError, TopicInfo


# ---- topic auto-detection -------------------------------------------------------------------
def _sibling_camera_info(image_topic: str) -> str:
    base = image_topic[:-len("/compressed")] if image_topic.endswith("/compressed") else image_topic
    ns = base.rsplit("/", 1)[0]
    return f"{ns}/camera_info"


_DEPTHISH = ("depth", "disparity", "/mono_depth")


def detect_image_topic(topics: Dict[str, TopicInfo], bag: "str | Path" = "bag") -> str:
    """The colour image topic: the only sensor_msgs/Image topic that is not a depth image; among
    several, the only one with a sibling camera_info (``<ns>/camera_info``). Without raw images,
    the same among sensor_msgs/CompressedImage topics (``.../compressed``)."""
    for msgtype in (IMAGE, COMPRESSED_IMAGE):
        cands = [t for t, i in topics.items() if i.msgtype == msgtype and not any(d in t.lower() for d in _DEPTHISH)]
        if len(cands) > 1:
            with_info = [t for t in cands if topics.get(_sibling_camera_info(t), None) is not None
                         and topics[_sibling_camera_info(t)].msgtype == CAMERA_INFO]
            if len(with_info) == 1:
                return with_info[0]
            raise BagError(f"bag {bag} has several image topics ({', '.join(sorted(cands))}): "
                           "choose one with --image-topic")
        if cands:
            return cands[0]
    raise BagError(f"bag {bag} has no sensor_msgs/msg/Image (or CompressedImage) topic; it has: "
                   + (", ".join(f"{k} ({v.msgtype})" for k, v in sorted(topics.items())) or "no topics"))


def detect_camera_info_topic(topics: Dict[str, TopicInfo], image_topic: str, bag: "str | Path" = "bag") -> str:
    """``<image namespace>/camera_info`` (the ROS convention), else the only CameraInfo topic."""
    sib = _sibling_camera_info(image_topic)
    if sib in topics and topics[sib].msgtype == CAMERA_INFO:
        return sib
    cands = [t for t, i in topics.items() if i.msgtype == CAMERA_INFO]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise BagError(f"bag {bag}: images on {image_topic} have no camera_info (no sensor_msgs/msg/CameraInfo "
                       f"topic, expected {sib}); pass --camera-info-topic, or record the camera_info")
    raise BagError(f"bag {bag}: cannot tell which camera_info belongs to {image_topic} "
                   f"({', '.join(sorted(cands))}): pass --camera-info-topic")


def detect_lidar_topic(topics: Dict[str, TopicInfo], bag: "str | Path" = "bag") -> Optional[str]:
    """The only PointCloud2 topic (or the only one named like a LiDAR), None if there is none."""
    cands = [t for t, i in topics.items() if i.msgtype == POINTCLOUD2 and "depth" not in t.lower()]
    if len(cands) > 1:
        lidar = [t for t in cands if any(k in t.lower() for k in ("velodyne", "lidar", "ouster", "hesai", "livox"))]
        if len(lidar) == 1:
            return lidar[0]
        raise BagError(f"bag {bag} has several point-cloud topics ({', '.join(sorted(cands))}): choose one with --lidar-topic")
    return cands[0] if cands else None
