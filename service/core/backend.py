"""The seam between the core and whatever runs the model: one small Protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
JsonObject = dict[str, object]  # a JSON object as read: its values are checked where they are used


@dataclass(frozen=True)
class ModelInfo:
    """What the served model is, as the export wrote it into the model file's metadata."""

    name: str
    config: str
    params: int
    window: int
    trained: bool
    weights: str
    precision: str
    device: str
    hyperparams: JsonObject = field(default_factory=dict)
    card: str | None = None

    @classmethod
    def from_meta(cls, meta: Mapping[str, object], *, device: str) -> ModelInfo:
        """Build from the ``motionlift.json`` metadata of an exported model; ``KeyError`` if a field is missing,
        ``ValueError`` if one has the wrong type."""
        hyperparams, card = meta.get("hyperparams", {}), meta.get("card")
        if not isinstance(hyperparams, dict) or not (card is None or isinstance(card, str)):
            raise ValueError("model metadata: hyperparams must be an object and card a string")
        return cls(
            name=str(meta["name"]),
            config=str(meta["config"]),
            params=_int(meta, "params"),
            window=_int(meta, "window"),
            trained=bool(meta["trained"]),
            weights=str(meta["weights"]),
            precision=str(meta.get("precision", "fp32")),
            device=device,
            hyperparams=dict(hyperparams),
            card=card,
        )

    def ref(self) -> JsonObject:
        """The model an answer came from: ``name``, ``config``, ``trained`` (REST ``model``, gRPC ``ModelRef``)."""
        return {"name": self.name, "config": self.config, "trained": self.trained}

    def describe(self, joint_names: Sequence[str]) -> JsonObject:
        """Everything about the model, as ``GET /v1/model`` answers it."""
        return {
            "name": self.name,
            "config": self.config,
            "hyperparams": self.hyperparams,
            "params": self.params,
            "window": self.window,
            "joints": len(joint_names),
            "joint_names": list(joint_names),
            "precision": self.precision,
            "device": self.device,
            "trained": self.trained,
            "weights": self.weights,
            "card": self.card,
        }


def _int(meta: Mapping[str, object], key: str) -> int:
    value = meta[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"model metadata: {key} must be a number, got {value!r}")
    return int(value)


class Backend(Protocol):
    """Runs the lifting model on batches of equal-length windows.

    Lifecycle: construct (cheap, no I/O) -> ``await start()`` (load, warm up; ``ready`` becomes True)
    -> ``infer`` any number of times, at most ``concurrency + ahead`` calls at once -> ``await close()``.
    """

    @property
    def ready(self) -> bool:
        """True once the model is loaded and warmed up, and while it can serve."""
        ...

    @property
    def concurrency(self) -> int:
        """How many batches it can usefully run at once (1 for a model in this process); valid after start, and
        it may change while it runs (servers of a remote backend joining and leaving)."""
        ...

    @property
    def ahead(self) -> int:
        """How many more batches it takes while ``concurrency`` run, each queued where the model runs and started
        the moment a running one ends, so the model does not wait for this process between batches (0: none)."""
        ...

    @property
    def info(self) -> ModelInfo:
        """The model's metadata; only valid after ``start()``."""
        ...

    async def start(self) -> None:
        """Load and warm up the model. Raises ``Unavailable`` if it cannot be loaded."""
        ...

    async def infer(self, batch: Array, *, first: int = 0, headers: Mapping[str, str] | None = None) -> Array:
        """Lift ``[B, T, 17, 3]`` normalised keypoints to ``[B, T - first, 17, 3]`` joints, off the event loop:
        the frames ``first..T-1`` of every window (``0 <= first < T``; a stream answers only its newest frames).

        ``headers``: the batch's W3C trace context (``traceparent``...), forwarded to a model server in another
        process so its spans join the trace; a model in this process ignores it.

        Raises ``Unavailable`` when the model cannot be reached and ``BackendError`` when it fails.
        """
        ...

    async def close(self) -> None:
        """Release the model; ``ready`` becomes False."""
        ...
