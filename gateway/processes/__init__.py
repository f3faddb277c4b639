"""Processes: the worker children of `serve` (child.py, supervisor.py), and the pool of
killable worker processes (pool.py) that runs signature verification (verify.py) and message
analysis (pipeline/pools.py) with a deadline per job."""
