"""The seam between the core and whatever runs the model: one small Protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


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
    hyperparams: dict[str, Any] = field(default_factory=dict)
    card: str | None = None

    @classmethod
    def from_meta(cls, meta: dict[str, Any], *, device: str) -> ModelInfo:
        """Build from the ``motionlift.json`` metadata of an exported model; KeyError if a field is missing."""
        return cls(
            name=str(meta["name"]),
            config=str(meta["config"]),
            params=int(meta["params"]),
            window=int(meta["window"]),
            trained=bool(meta["trained"]),
            weights=str(meta["weights"]),
            precision=str(meta.get("precision", "fp32")),
            device=device,
            hyperparams=dict(meta.get("hyperparams", {})),
            card=meta.get("card"),
        )

    def ref(self) -> dict[str, Any]:
        """The model an answer came from: ``name``, ``config``, ``trained`` (REST ``model``, gRPC ``ModelRef``)."""
        return {"name": self.name, "config": self.config, "trained": self.trained}

    def describe(self, joint_names: Sequence[str]) -> dict[str, Any]:
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


class Backend(Protocol):
    """Runs the lifting model on batches of equal-length windows.

    Lifecycle: construct (cheap, no I/O) -> ``await start()`` (load, warm up; ``ready`` becomes True)
    -> ``infer`` any number of times, at most ``concurrency`` calls at once -> ``await close()``.
    """

    @property
    def ready(self) -> bool:
        """True once the model is loaded and warmed up, and while it can serve."""
        ...

    @property
    def concurrency(self) -> int:
        """How many batches it can usefully run at once (1 for a model in this process); valid after start."""
        ...

    @property
    def info(self) -> ModelInfo:
        """The model's metadata; only valid after ``start()``."""
        ...

    async def start(self) -> None:
        """Load and warm up the model. Raises ``Unavailable`` if it cannot be loaded."""
        ...

    async def infer(self, batch: Array) -> Array:
        """Lift ``[B, T, 17, 3]`` normalised keypoints to ``[B, T, 17, 3]`` joints, off the event loop.

        Raises ``Unavailable`` when the model cannot be reached and ``BackendError`` when it fails.
        """
        ...

    async def close(self) -> None:
        """Release the model; ``ready`` becomes False."""
        ...
