"""The run folder's files as the report reads them: each a :class:`Source` (path or glob, record type, the command
that writes it), one constant per record kind, shared by the site, the sections and the comparison."""
from __future__ import annotations

from dataclasses import dataclass

from ..training.config import TrainConfig
from ..runfolder import layout
from ..runfolder.records import (TRAIN_COMMAND, CorrespondenceRecord, EvalRecord, InspectRecord, InvarianceRecord,
                                 MetricsRow, ModelRecord, OcclusionRecord, PredictionsRecord, RetrievalRecord,
                                 SanityRecord, TransferRecord, VisualizeRecord)


@dataclass(frozen=True)
class Source:
    """A file (or a glob of files) of the run folder, the record type it holds and the command that writes it."""

    path: str
    record: type
    command: str
    lines: bool = False  # JSON lines (metrics.jsonl): a list of records

    @classmethod
    def of(cls, record: type) -> "Source":
        return cls(record.PATH, record, record.COMMAND)


CONFIG = Source(layout.CONFIG, TrainConfig, TRAIN_COMMAND)
METRICS = Source(layout.METRICS, MetricsRow, TRAIN_COMMAND, lines=True)
MODEL = Source.of(ModelRecord)  # a --model's analysis folder
EVAL, PREDICTIONS, INSPECT, OCCLUSION, SANITY, INVARIANCE, CORRESPONDENCE, TRANSFER, RETRIEVAL = map(Source.of, (
    EvalRecord, PredictionsRecord, InspectRecord, OcclusionRecord, SanityRecord, InvarianceRecord,
    CorrespondenceRecord, TransferRecord, RetrievalRecord))
VISUALIZE = Source.of(VisualizeRecord)
