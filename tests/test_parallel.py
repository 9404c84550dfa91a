"""parallel_map: results in input order whichever worker finishes first, the same serial and in processes."""
import pytest

from mmkd_core.parallel import default_workers, parallel_map


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_map_keeps_input_order_and_reports_each_result(workers):
    seen = []
    results = parallel_map(abs, [-3, 1, -2, 0], workers, on_result=lambda item, result: seen.append((item, result)))
    assert results == [3, 1, 2, 0]
    assert sorted(seen) == [(-3, 3), (-2, 2), (0, 0), (1, 1)]


def test_parallel_map_of_nothing_starts_no_worker():
    assert parallel_map(abs, [], workers=4) == []
    assert default_workers() >= 1
