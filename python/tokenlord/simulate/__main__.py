"""A quick look at the simulator: ``python -m tokenlord.simulate``."""

from __future__ import annotations

import json
import sys
import time

from tokenlord.simulate import generate, summary

t0 = time.perf_counter()
s = summary(generate(users=200, days=7, gamers=4, seed=1))
print(json.dumps(s, indent=2, default=str))
print(f"{s['events']:,} events in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
