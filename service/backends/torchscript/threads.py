"""Process-wide settings for the model's OpenMP threads, applied before torch is imported.

Why: torch's CPU kernels run on OpenMP threads that spin while they wait for work (libgomp's default active wait).
When anything else wants a core -- the service's own event loop under load, a body reader parsing a large
request, a load generator on the same machine -- a spinning thread holds it, and a descheduled one makes its
siblings spin longer at every barrier. Measured on this project's 2-core machine (default model, 27-frame lifts
every 50 ms): with a niced CPU hog beside the server, p99 143 ms spinning against 40 ms waiting passively (quiet:
51 and 41 ms); at 10x overload against a 16-window queue, goodput fell to 0.26x of the saturated figure spinning and
0.62x waiting passively; during a 57 MiB request, the slowest small lift took 195 ms spinning and 90 ms passively.
The cost: about 10% of throughput at saturation on a quiet machine, within this VM's noise.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)


def wait_passively() -> bool:
    """Make OpenMP threads sleep while idle (``OMP_WAIT_POLICY=PASSIVE``) unless the environment says otherwise.
    True when the setting is in effect for this process's torch. It must run before torch is imported (libgomp
    reads it once, at load): when torch is already imported, nothing changes and a warning says so."""
    if "torch" in sys.modules:
        if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            log.warning("torch was imported before the OpenMP wait policy was set; its threads will spin")
        return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"
