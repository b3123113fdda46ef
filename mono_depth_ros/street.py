"""Street scenes seen by KITTI's colour camera: re-exports :mod:`mono_depth_ros.synthetic.street` (the builder)
and KITTI's calibrations from :mod:`mono_depth_ros.synthetic.camera`."""
from .synthetic.camera import KITTI_CALIBS, KITTI_CAMERA_HEIGHT, KITTI_SIZE, kitti_intrinsics_scaled
from .synthetic.street import _street_scene

__all__ = ["KITTI_CALIBS", "KITTI_CAMERA_HEIGHT", "KITTI_SIZE", "kitti_intrinsics_scaled", "_street_scene"]
