"""The Solana programs' tests run LiteSVM many times in this process. They live in a
directory collected after ``tests/integration``: after LiteSVM has run in a process, SQLite
in that process was seen to misbehave (``database disk image is malformed`` in the market
writer's SQLite tests, and text-to-float casts of numbers beyond 64 bits answering 0), which
is being investigated; keeping these tests last keeps that out of the other suites."""
