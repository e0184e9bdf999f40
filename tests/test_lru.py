"""The one least-recently-used store behind every cache (analyses, audio, heads, channel maps)."""

import threading

from speech2flame.lru import LRU


def test_keeps_the_values_used_last_and_counts_hits_and_misses():
    cache, calls = LRU(2), []
    compute = lambda key: cache.get_or_compute(key, lambda: calls.append(key) or key.upper())  # noqa: E731
    assert [compute(k) for k in ("a", "b", "a", "c", "b", "a")] == ["A", "B", "A", "C", "B", "A"]
    # "c" pushed out "b" (used before "a"), then "b" pushed out "a"
    assert calls == ["a", "b", "c", "b", "a"] and cache.stats() == {"hits": 1, "misses": 5, "size": 2}
    assert cache.get("c", "none") == "none" and cache.get("a") == "A"


def test_slow_work_for_one_key_does_not_hold_up_another():
    cache, started, release = LRU(4), threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return "slow"

    worker = threading.Thread(target=lambda: cache.get_or_compute("slow", slow))
    worker.start()
    assert started.wait(10)
    assert cache.get_or_compute("fast", lambda: "fast") == "fast"  # while "slow" is still computing
    release.set()
    worker.join(10)
    assert cache.get("slow") == "slow"
