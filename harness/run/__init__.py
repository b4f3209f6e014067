"""Running cases: the pipeline, sessions, scheduling, worker processes, vectorized batches, traces, interrupts."""
