"""Benchmarks: the raw model (``model.py``) and the served service under load (``load.py``)."""
