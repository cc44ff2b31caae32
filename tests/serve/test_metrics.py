"""Prometheus text rendering checked against hand-written expected lines."""

from __future__ import annotations

from rewardlab.serve.metrics import Counter, Histogram


def test_histogram_lines_are_cumulative():
    h = Histogram("lat", "latency", (1, 2), ("endpoint",))
    for v in (0.5, 1.0, 3.0):
        h.observe(v, "/x")
    assert h.lines() == [
        "# HELP lat latency", "# TYPE lat histogram",
        'lat_bucket{endpoint="/x",le="1.0"} 2', 'lat_bucket{endpoint="/x",le="2.0"} 2',
        'lat_bucket{endpoint="/x",le="+Inf"} 3', 'lat_sum{endpoint="/x"} 4.5', 'lat_count{endpoint="/x"} 3',
    ]


def test_counter_escapes_label_values():
    c = Counter("req", "requests", ("path",))
    c.inc('a"b\\c\n')
    c.inc('a"b\\c\n', by=2)
    assert c.lines()[-1] == 'req{path="a\\"b\\\\c\\n"} 3.0'
