"""The overload benchmark's goals and thresholds (``overload_bench.py``; printed as ok / MISS in
its summary and explained in its tables)."""

# Goals (printed as ok / MISS in the summary).
TARGET_ACCEPTED_RATIO = 0.9  # accepted writes/s during the overload >= 0.9 x S
TARGET_NORMAL_S = 2.0  # overload end -> back to normal
# Memory stays bounded: the RSS beyond what the accepted writes explain ("excess") grows by less
# than this from the first half of the overload to the second (an unbounded queue keeps growing).
TARGET_EXCESS_GROWTH_MIB = 16.0
OFFERED_OK_RATIO = 0.95  # the clients offered >= 95% of factor x S (else: client-bound)

# "Back to normal": every bucket of a run of NORMAL_HOLD buckets of NORMAL_BUCKET_S has at least
# NORMAL_SHARE of its due requests accepted and a p99 under NORMAL_P99_FACTOR x the baseline's p99.
NORMAL_BUCKET_S = 0.25
NORMAL_HOLD = 4
NORMAL_SHARE = 0.99
NORMAL_P99_FACTOR = 3.0
FAST_MS = 50.0  # a "fast" answer
