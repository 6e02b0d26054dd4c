"""The coverage heatmap of a month as a PNG: one row per sensor, one column per day, the colour
the share of the day's minutes present (red none, yellow half, green all).

Written with numpy and zlib only (PNG is a zlib stream of scanlines), so no plotting library is
needed; the coverage check shows it in the Dagster UI as a Markdown image.
"""

import base64
import struct
import zlib

import numpy as np

NONE = (200, 40, 40)
HALF = (235, 200, 60)
ALL = (40, 160, 70)


def colours(shares: np.ndarray) -> np.ndarray:
    """RGB per cell for shares in [0, 1]: red -> yellow -> green."""
    share = np.clip(shares, 0.0, 1.0)[..., None]
    low, mid, high = (np.array(c, dtype=np.float64) for c in (NONE, HALF, ALL))
    rgb = np.where(
        share < 0.5, low + (mid - low) * share * 2, mid + (high - mid) * (share - 0.5) * 2
    )
    return np.rint(rgb).astype(np.uint8)


def png(rgb: np.ndarray, scale: int = 1) -> bytes:
    """An 8-bit RGB PNG of an (height, width, 3) uint8 array, each pixel `scale` x `scale`."""
    pixels = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    height, width, _ = pixels.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def markdown(shares: np.ndarray, sensor_ids: list[int], caption: str, scale: int = 4) -> str:
    """A Markdown image (data URI) of the heatmap, with a line saying how to read it."""
    if not sensor_ids:
        return f"{caption}: no sensor"
    data = base64.b64encode(png(colours(shares), scale)).decode()
    return (
        f"![{caption}](data:image/png;base64,{data})\n\n"
        f"Rows: sensors {sensor_ids[0]}..{sensor_ids[-1]} ({len(sensor_ids)}); columns: days. "
        "Green: every minute of the day present, yellow: half, red: none."
    )
