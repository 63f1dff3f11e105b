"""How many slices an H.264 access unit carries: picks the decoder's threading for ``file:``.

FFmpeg can decode H.264 on several cores in two ways. Frame threading decodes several frames at
once; each waits for the rows of its reference frame, and on a 2-core Pi or VM that costs a
quarter more time than slice threading, which decodes the slices of one frame side by side.
Slice threading only helps when the encoder cut frames into slices; x264 with
``tune=zerolatency`` does (one slice per thread), so Doorward's own clips and rendered scenes are
sliced, while many cameras' files are not. :func:`slices_in_packet` counts them in the first
packet so the file source can choose.

Usage::

    n = slices_in_packet(bytes(packet), stream.codec_context.extradata)
    stream.thread_type = "SLICE" if n >= 2 else "AUTO"

Pure: bytes in, a count out. Packets come in two framings: MP4/MKV's length-prefixed NAL units
(the ``avcC`` record in the extradata gives the length size) and Annex B start codes (raw
``.h264``, MPEG-TS). Anything unrecognised counts 0 slices, which keeps FFmpeg's default choice.
"""

from __future__ import annotations

_SLICE_TYPES = {1, 5}  # coded slice of a non-IDR picture, of an IDR picture


def nal_length_size(extradata: bytes | None) -> int | None:
    """The NAL length size (1, 2 or 4) from an ``avcC`` record, or None for Annex B / unknown."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None  # avcC starts with configurationVersion 1; Annex B starts with 0x00
    size = (extradata[4] & 0x03) + 1
    return size if size in (1, 2, 4) else None


def _nal_types_length_prefixed(data: bytes, size: int) -> list[int]:
    types, pos = [], 0
    while pos + size < len(data):
        length = int.from_bytes(data[pos : pos + size], "big")
        if length == 0 or pos + size + length > len(data):
            break  # damaged or truncated: count what was whole
        types.append(data[pos + size] & 0x1F)
        pos += size + length
    return types


def _nal_types_annex_b(data: bytes) -> list[int]:
    types, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(data):
        types.append(data[pos + 3] & 0x1F)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return types


def slices_in_packet(data: bytes, extradata: bytes | None) -> int:
    """The number of coded slices in one H.264 packet (an access unit); 0 if it cannot tell."""
    size = nal_length_size(extradata)
    types = _nal_types_length_prefixed(data, size) if size else _nal_types_annex_b(data)
    return sum(1 for t in types if t in _SLICE_TYPES)
