"""The coverage heatmap (`transform.heatmap`): a valid PNG whose pixels are the shares' colours."""

import base64
import re
import struct
import zlib

import numpy as np

from bangkok_pipeline.transform import heatmap


def _decode(data: bytes) -> np.ndarray:
    """An (height, width, 3) array from an 8-bit RGB PNG without filters, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, dict[bytes, bytes]()
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour_type) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert not rows[:, 0].any()  # filter type 0 on every scanline
    return rows[:, 1:].reshape(height, width, 3)


def test_the_png_holds_each_cell_in_its_colour_scaled() -> None:
    shares = np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 0.25]])
    image = _decode(heatmap.png(heatmap.colours(shares), scale=3))
    assert image.shape == (6, 9, 3)
    assert tuple(image[0, 0]) == heatmap.NONE
    assert tuple(image[2, 4]) == heatmap.HALF
    assert tuple(image[0, 8]) == tuple(image[3, 0]) == heatmap.ALL
    quarter = image[5, 7]  # between red and yellow
    assert heatmap.NONE[1] < quarter[1] < heatmap.HALF[1]


def test_the_markdown_is_an_inline_image_with_a_legend() -> None:
    text = heatmap.markdown(np.ones((2, 31)), [4, 9], "coverage of 2019-03")
    found = re.match(r"!\[coverage of 2019-03\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text)
    assert found is not None
    assert _decode(base64.b64decode(found[1])).shape == (2 * 4, 31 * 4, 3)
    assert "sensors 4..9 (2)" in text and "Green" in text
