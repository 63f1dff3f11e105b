"""agent.camera.h264: counting the slices of an access unit in both framings."""

from __future__ import annotations

import pytest

from agent.camera.h264 import nal_length_size, slices_in_packet

# An avcC record: version 1, profile/compat/level, then 0xFF = reserved bits + lengthSizeMinusOne 3.
AVCC_4 = bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 0])
AVCC_2 = bytes([1, 0x64, 0, 0x1F, 0xFD, 0xE1, 0, 0])


def nal(kind: int, body: bytes = b"\x88\x84\x00") -> bytes:
    return bytes([0x60 | kind]) + body  # nal_ref_idc 3, nal_unit_type ``kind``


def length_prefixed(nals: list[bytes], size: int = 4) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


def test_length_size_comes_from_the_avcc_record() -> None:
    assert nal_length_size(AVCC_4) == 4
    assert nal_length_size(AVCC_2) == 2
    assert nal_length_size(None) is None
    assert nal_length_size(b"\x00\x00\x00\x01\x67") is None  # Annex B extradata
    assert nal_length_size(b"\x01\x02") is None  # too short to be a record


def test_counts_slices_not_parameter_sets_or_sei() -> None:
    # An IDR access unit as x264 writes it with 2 slice threads: SEI, then two IDR slices.
    idr = length_prefixed([nal(6), nal(5), nal(5)])
    assert slices_in_packet(idr, AVCC_4) == 2
    assert slices_in_packet(length_prefixed([nal(1)]), AVCC_4) == 1
    assert slices_in_packet(length_prefixed([nal(1), nal(1), nal(1)], 2), AVCC_2) == 3


def test_annex_b_start_codes_of_both_lengths() -> None:
    data = b"\x00\x00\x00\x01" + nal(7) + b"\x00\x00\x01" + nal(8) + b"\x00\x00\x01" + nal(5) \
        + b"\x00\x00\x00\x01" + nal(5)
    assert slices_in_packet(data, None) == 2


@pytest.mark.parametrize("data", [b"", b"\xff" * 40, length_prefixed([nal(5)])[:-2]])
def test_damaged_or_foreign_data_counts_what_is_whole(data: bytes) -> None:
    assert slices_in_packet(data, AVCC_4) == 0


def test_a_truncated_second_slice_is_not_counted() -> None:
    data = length_prefixed([nal(5), nal(5)])
    assert slices_in_packet(data[:-1], AVCC_4) == 1
