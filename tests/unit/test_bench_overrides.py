"""The benchmarks' ``--det``/``--ev`` overrides reach the parameter classes with usable types."""

from motion import DetectorParams, EventParams
from scripts.bench_detection import _overrides


def test_whole_numbers_stay_ints_so_a_width_works_and_fractions_stay_floats() -> None:
    det = _overrides("edge_cluster=8,noise_k=4.5")
    assert det == {"edge_cluster": 8, "noise_k": 4.5}
    assert isinstance(det["edge_cluster"], int)
    DetectorParams(**det)  # a float width failed to slice the border strip
    assert EventParams(**_overrides("swept_hold=0,beam_shade=0.2")).swept_hold == 0
