"""ROS image encodings -> RGB: the same picture in every encoding decodes to the same RGB; bad buffers fail clearly."""
import cv2
import numpy as np
import pytest

from conftest import shared_path
from mono_depth_ros.encodings import (SUPPORTED_ENCODINGS, ImageDecodeError, bytes_per_pixel, decode_to_rgb,
                                      encode_rgb)

EXACT = ("rgb8", "bgr8", "rgba8", "bgra8")
YUV = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")


@pytest.fixture(scope="module")
def picture():
    """A real NYU frame (640x480), cropped to an odd-ish size to exercise strides."""
    p = shared_path("nyu_depth_v2_samples", "open3d_nyu_raw", "NYU_color.ppm")
    rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb[40:277, 100:422])  # 322 x 237


def _grey(rgb):
    return cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad", [0, 13])
def test_every_encoding_decodes_to_the_same_picture(picture, encoding, pad):
    h, w = picture.shape[:2]
    step = w * bytes_per_pixel(encoding) + pad
    data = encode_rgb(picture, encoding, step=step)
    assert len(data) == step * h
    out = np.empty_like(picture)
    rgb = decode_to_rgb(data, w, h, encoding, step=step, out=out)
    assert rgb is out and rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    diff = np.abs(rgb.astype(int) - picture)
    if encoding in EXACT:
        assert diff.max() == 0
    elif encoding.startswith("mono"):
        assert np.array_equal(rgb, _grey(picture))
    else:  # 4:2:2 chroma subsampling: luma exact-ish, colour close on average
        assert diff.mean() < 4.0
        assert np.abs(_grey(rgb).astype(int) - _grey(picture)).mean() < 2.0
    # the same bytes as a numpy array decode the same
    np.testing.assert_array_equal(decode_to_rgb(np.frombuffer(data, np.uint8), w, h, encoding, step=step), rgb)


def test_yuv_of_a_chroma_constant_pair_image_is_near_exact(picture):
    """Where each horizontal pixel pair shares its colour, 4:2:2 loses nothing but rounding."""
    pic = picture[:, : picture.shape[1] // 2 * 2].copy()
    pic[:, 1::2] = pic[:, 0::2]
    h, w = pic.shape[:2]
    a = decode_to_rgb(encode_rgb(pic, "uyvy"), w, h, "uyvy")
    b = decode_to_rgb(encode_rgb(pic, "yuyv"), w, h, "yuv422_yuy2")
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - pic).max() <= 6 and np.abs(a.astype(int) - pic).mean() < 1.5


def test_mono16_byte_orders_and_arrays(picture):
    h, w = picture.shape[:2]
    grey = _grey(picture)
    # v = grey * 256 + 17: high and low bytes differ, so the byte order matters
    v = cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 256 + 17
    le, be = v.astype("<u2").tobytes(), v.astype(">u2").tobytes()
    np.testing.assert_array_equal(decode_to_rgb(encode_rgb(picture, "mono16"), w, h, "mono16"), grey)
    assert not np.array_equal(decode_to_rgb(le, w, h, "mono16", is_bigendian=True), grey)
    np.testing.assert_array_equal(decode_to_rgb(le, w, h, "mono16", is_bigendian=False), grey)
    np.testing.assert_array_equal(decode_to_rgb(be, w, h, "mono16", is_bigendian=True), grey)
    # a uint16 value array (e.g. from cv_bridge) is taken by value: 16-bit -> top 8 bits
    vals = np.frombuffer(le, "<u2").reshape(h, w).astype(np.uint16)
    np.testing.assert_array_equal(decode_to_rgb(vals, w, h, "mono16"), grey)
    ramp = np.array([[0, 255, 256, 65535]], np.uint16)
    np.testing.assert_array_equal(decode_to_rgb(ramp, 4, 1, "mono16")[0, :, 0], [0, 0, 1, 255])


def test_out_buffer_is_reused_only_when_it_fits(picture):
    h, w = picture.shape[:2]
    data = encode_rgb(picture, "bgr8")
    wrong = np.empty((h + 1, w, 3), np.uint8)
    r = decode_to_rgb(data, w, h, "bgr8", out=wrong)
    assert r is not wrong and np.array_equal(r, picture)
    r2 = decode_to_rgb(data, w, h, "bgr8", out=r)
    assert r2 is r


def test_bad_inputs_raise_clear_errors(picture):
    h, w = picture.shape[:2]
    data = encode_rgb(picture, "rgb8")
    with pytest.raises(ImageDecodeError, match="unsupported image encoding 'bayer_rggb8'"):
        decode_to_rgb(data, w, h, "bayer_rggb8")
    with pytest.raises(ImageDecodeError, match="step 100 is smaller"):
        decode_to_rgb(data, w, h, "rgb8", step=100)
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_to_rgb(data[:-10], w, h, "rgb8")
    with pytest.raises(ImageDecodeError, match="truncated .or the step is wrong"):
        decode_to_rgb(data, w, h, "rgb8", step=w * 3 + 4)  # row padding that is not in the data
    with pytest.raises(ImageDecodeError, match="more than step"):
        decode_to_rgb(data + b"\0" * 3, w, h, "rgb8")
    with pytest.raises(ImageDecodeError, match="positive"):
        decode_to_rgb(b"", 0, h, "rgb8")
    with pytest.raises(ImageDecodeError, match="positive"):
        decode_to_rgb(data, w, 0, "rgb8")
    with pytest.raises(ImageDecodeError, match="even width"):
        decode_to_rgb(b"\0" * (3 * 2 * 2), 3, 2, "uyvy")
    with pytest.raises(ImageDecodeError, match="bytes or a numpy array"):
        decode_to_rgb(12345, w, h, "rgb8")
    assert issubclass(ImageDecodeError, ValueError)
    # the last row's padding may be absent (some drivers); anything shorter is truncated
    step = w * 3 + 8
    padded = encode_rgb(picture, "rgb8", step=step)
    np.testing.assert_array_equal(decode_to_rgb(padded[:-8], w, h, "rgb8", step=step), picture)
