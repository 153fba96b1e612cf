"""Real servers started for tests and benchmarks, stopped by PID."""
