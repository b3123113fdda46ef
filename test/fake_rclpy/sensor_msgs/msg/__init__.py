from _fake_msgs import export

globals().update(export("sensor_msgs", ["Image", "CompressedImage", "CameraInfo", "RegionOfInterest",
                                        "PointCloud2", "PointField"]))
