"""image_files' header parser, from a file and from memory (the node's CompressedImage size check uses the
latter): the same answer as the decoder for the formats it parses, None for what it does not."""
from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from mono_depth_ros.image_files import read_header, read_header_bytes


def _encode(ext, img, params=()):
    ok, data = cv2.imencode(ext, img, list(params))
    assert ok
    return data


@pytest.mark.parametrize("ext, img, params", [
    (".png", np.zeros((150, 200, 3), np.uint8), ()),
    (".png", np.zeros((48, 64), np.uint16), ()),                                       # a 16-bit depth map
    (".jpg", np.zeros((150, 200, 3), np.uint8), ()),
    (".jpg", np.zeros((150, 200, 3), np.uint8), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),     # SOF2
    (".bmp", np.zeros((31, 45, 3), np.uint8), ()),
    (".ppm", np.zeros((31, 45, 3), np.uint8), ()),
])
def test_header_from_memory_equals_header_from_file(tmp_path, ext, img, params):
    data = _encode(ext, img, params)
    path = tmp_path / f"x{ext}"
    path.write_bytes(data.tobytes())
    h = read_header(path)
    assert h is not None and (h.width, h.height) == (img.shape[1], img.shape[0])
    assert h.depth_map_like == (img.dtype == np.uint16)
    # numpy, bytes and array.array (rclpy's uint8[]) buffers alike
    for buf in (data, data.tobytes(), array.array("B", data.tobytes())):
        assert read_header_bytes(buf) == h


def test_jpeg_with_an_exif_segment_before_the_frame_header():
    data = _encode(".jpg", np.zeros((150, 200, 3), np.uint8)).tobytes()
    app1 = b"\xff\xe1" + (2 + 5000).to_bytes(2, "big") + bytes(5000)    # a 5 kB APP1 (EXIF) segment
    h = read_header_bytes(data[:2] + app1 + data[2:])
    assert h is not None and (h.width, h.height) == (200, 150)


def test_what_does_not_parse_is_none():
    data = _encode(".jpg", np.zeros((150, 200, 3), np.uint8)).tobytes()
    assert read_header_bytes(data[:20]) is None                      # cut before the frame header
    assert read_header_bytes(b"GIF89a" + bytes(40)) is None
    assert read_header_bytes(b"") is None
    assert read_header_bytes(b"\xff\xd8" + bytes(1000)) is None       # SOI, then no marker
    assert read_header_bytes(b"\xff\xd8\xff\xe1\x00") is None          # a segment length cut short


def test_the_jpeg_walk_stops_at_the_first_byte_that_is_no_marker():
    from mono_depth_ros.image_files import _BufferReader, _jpeg

    f = _BufferReader(b"\xff\xd8" + bytes(1_000_000))
    assert _jpeg(f, b"") is None and f.seek(0, 1) == 3   # one byte read after SOI, not a walk through the buffer
