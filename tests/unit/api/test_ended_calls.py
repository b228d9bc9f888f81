"""grpcio's ERROR for a send the core refused (the call had ended) becomes a WARNING; other records pass as they
are."""

from __future__ import annotations

import logging
import sys

from service.api.grpc.server import CORE_LOGGER, EndedCalls


def _record(level: int, message: str) -> logging.LogRecord:
    try:
        raise RuntimeError("Failed execute_batch")
    except RuntimeError:
        exc_info = sys.exc_info()
    return logging.LogRecord(CORE_LOGGER, level, "server.pyx.pxi", 1, message, None, exc_info)


def test_a_refused_send_is_a_warning_naming_the_method_without_a_traceback() -> None:
    record = _record(logging.ERROR, "ExecuteBatchError raised in core by servicer method [/motionlift.v1.Lifter/Lift]")
    assert EndedCalls().filter(record) is True
    assert (record.levelno, record.levelname, record.exc_info) == (logging.WARNING, "WARNING", None)
    assert record.getMessage() == (
        "a call of [/motionlift.v1.Lifter/Lift] ended before its answer was sent (deadline, cancel or lost connection)"
    )


def test_other_grpc_errors_pass_unchanged() -> None:
    record = _record(logging.ERROR, "Unexpected [ValueError] raised by servicer method [/motionlift.v1.Lifter/Lift]")
    assert EndedCalls().filter(record) is True
    assert (record.levelno, record.getMessage()) == (
        logging.ERROR,
        "Unexpected [ValueError] raised by servicer method [/motionlift.v1.Lifter/Lift]",
    )
    assert record.exc_info is not None
