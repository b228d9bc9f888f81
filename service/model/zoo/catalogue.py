"""The names ``motionlift pull`` knows: where each checkpoint is published and what is known about it.

Every fact below was read from the publishers' own pages (the official repository github.com/Walter0807/MotionBERT:
README "Model Zoo", docs/pose3d.md, docs/inference.md, LICENSE; MMPose's configs/body_3d_keypoint/motionbert:
README.md, h36m/motionbert_h36m.md and .yml, the configs, tools/misc/publish_model.py, LICENSE). What could not be
read there says so ("unverified"): the build machines reach no host but package registries, so no file was
downloaded and no SHA-256 below was computed by us (README "Official weights").
"""

from __future__ import annotations

from dataclasses import dataclass

HF_ENDPOINT = "https://huggingface.co"
ZOO_URL = "https://download.openmmlab.com"

# Human3.6M's terms bind what is trained on it; we could not read them (the dataset's site was not reachable).
H36M_TERMS = (
    "trained on Human3.6M, whose owners license its data to registered users only (MotionBERT's docs/pose3d.md "
    "sends users to register at vision.imar.ro/human3.6m); those terms, widely reported as non-commercial research "
    "use (unverified here), may bind these weights: check them before any commercial use"
)
_MOTIONBERT_LICENCE = (
    "Apache-2.0 (the official repository's LICENSE; the Hugging Face repository declares no licence of its own)"
)
_MMPOSE_LICENCE = "Apache-2.0 (MMPose's LICENSE), converted from MotionBERT's Apache-2.0 weights"
# 42,466,317 float32 parameters; the README gives 162MB, MiB (a third party measured the official pretrained
# full checkpoint at 169,958,969 bytes).
_FULL_SIZE = "about 170 MB = 162 MiB (unverified for this file: the README's size of the full model)"
_MMPOSE_PREFIX = (
    "not published; the file name carries the first 8 hex digits of its SHA-256 (MMPose's "
    "tools/misc/publish_model.py names files so), which pull enforces"
)


@dataclass(frozen=True)
class Hub:
    """A file of a Hugging Face model repository, fetched with ``huggingface_hub`` into its standard cache."""

    repo_id: str
    filename: str
    revision: str = "main"

    def url(self, endpoint: str) -> str:
        """The file's download address (``{endpoint}/{repo_id}/resolve/{revision}/{filename}``, as the Hub forms it)."""
        return f"{endpoint.rstrip('/')}/{self.repo_id}/resolve/{self.revision}/{self.filename}"

    @property
    def file_name(self) -> str:
        return self.filename.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Zoo:
    """A file at a plain URL of a model zoo (``path`` under its base URL), fetched resumably by ``fetch``."""

    path: str

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.path}"

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Entry:
    """A checkpoint known by name: its source, the DSTformer config it fits (``configs.CONFIGS``), and what is
    known about it. ``sha256`` is the value a download must have (None: not published, so the first pull records
    it, trust-on-first-use); ``sha256_prefix`` the leading hex digits a publisher put in the file name; ``terms``
    what the training data's licence asks of the weights."""

    name: str
    title: str
    config: str
    source: Hub | Zoo
    size: str
    licence: str
    accuracy: str
    sha256: str | None = None
    sha256_note: str = "not published: the first pull records it (trust-on-first-use)"
    sha256_prefix: str | None = None
    source_note: str = ""
    terms: str = H36M_TERMS


CATALOGUE: dict[str, Entry] = {
    entry.name: entry
    for entry in (
        Entry(
            name="motionbert-h36m",
            title="MotionBERT fine-tuned on Human3.6M: the official pose3d checkpoint (MB_ft_h36m)",
            config="full",
            source=Hub("walterzhu/MotionBERT", "checkpoint/pose3d/FT_MB_release_MB_ft_h36m/best_epoch.bin"),
            source_note="unverified: the official checkpoint folder's path, from which third-party code downloads it",
            size=_FULL_SIZE,
            licence=_MOTIONBERT_LICENCE,
            accuracy="MPJPE 37.2 mm on Human3.6M from Stacked Hourglass 2D detections (README Model Zoo, "
            "'3D Pose (H36M-SH, ft)')",
        ),
        Entry(
            name="motionbert-lite-h36m",
            title="MotionBERT-Lite fine-tuned on Human3.6M (MB_ft_h36m_global_lite): the official checkpoint "
            "for videos in the wild (docs/inference.md)",
            config="lite",
            source=Hub("walterzhu/MotionBERT", "checkpoint/pose3d/FT_MB_lite_MB_ft_h36m_global_lite/best_epoch.bin"),
            source_note="unverified: the path docs/inference.md names, from which third-party code downloads it",
            size="about 64 MB = 61 MiB (the README: 61MB; 16.0 M float32 parameters; a third party reports ~64 MB)",
            licence=_MOTIONBERT_LICENCE,
            accuracy="none published for this checkpoint (the README: 'MotionBERT-Lite gives a similar performance' "
            "to the full model)",
            sha256="9811155371db4ca5d20f31a36a232d41012e12e1333882888a564d741861148f",
            sha256_note="reported by two independent third-party records of the Hub's file; not computed by us",
        ),
        Entry(
            name="mmpose-motionbert-h36m",
            title="MotionBERT trained on Human3.6M, converted by MMPose (motionbert_dstformer-243frm_8xb32-240e_h36m)",
            config="full",
            source=Zoo("mmpose/v1/body_3d_keypoint/pose_lift/h36m/motionbert_h36m-f554954f_20230531.pth"),
            size=_FULL_SIZE,
            licence=_MMPOSE_LICENCE,
            accuracy="MPJPE 34.5 mm, P-MPJPE 27.1 mm on MMPose's Human3.6M with ground-truth 2D (motionbert_h36m.md; "
            "the collection README says 35.3 / 27.7); on the official repository's data MPJPE 39.8 mm, "
            "average MPJPE 39.2 mm, P-MPJPE 33.4 mm",
            sha256_note=_MMPOSE_PREFIX,
            sha256_prefix="f554954f",
        ),
        Entry(
            name="mmpose-motionbert-ft-h36m",
            title="MotionBERT fine-tuned on Human3.6M, converted by MMPose "
            "(motionbert_dstformer-ft-243frm_8xb32-120e_h36m)",
            config="full",
            source=Zoo("mmpose/v1/body_3d_keypoint/pose_lift/h36m/motionbert_ft_h36m-d80af323_20230531.pth"),
            size=_FULL_SIZE,
            licence=_MMPOSE_LICENCE,
            accuracy="MPJPE 26.9 mm, P-MPJPE 21.0 mm on MMPose's Human3.6M with ground-truth 2D (motionbert_h36m.md; "
            "the collection README says 27.5 / 21.6); on the official repository's data MPJPE 37.7 mm, "
            "average MPJPE 37.2 mm, P-MPJPE 32.2 mm",
            sha256_note=_MMPOSE_PREFIX,
            sha256_prefix="d80af323",
        ),
    )
}


@dataclass(frozen=True)
class Hosts:
    """Where sources are fetched from: the Hub's endpoint and the model zoo's base URL (mirrors; the tests point
    both at a server of their own)."""

    hf_endpoint: str = HF_ENDPOINT
    zoo_url: str = ZOO_URL

    def url(self, source: Hub | Zoo) -> str:
        return source.url(self.hf_endpoint if isinstance(source, Hub) else self.zoo_url)
