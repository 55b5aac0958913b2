"""`hactl bench`: wrk throughput, rollout/scale/unready timings, memory, and the report files."""
