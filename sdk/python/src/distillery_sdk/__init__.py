"""A typed Python client of the Distillery dataset API (``distillery serve``, ``distillery service api``)."""

from .client import Client, DistilleryError, ExportFailed
from .models import (
    SCHEMAS,
    Document,
    DocumentList,
    DocumentProgress,
    Export,
    Model,
    Previous,
    Record,
    RecordPage,
    Scores,
    Stats,
    Turn,
    Upload,
    Usage,
)

__all__ = [
    "Client",
    "DistilleryError",
    "ExportFailed",
    "SCHEMAS",
    "Document",
    "DocumentList",
    "DocumentProgress",
    "Export",
    "Model",
    "Previous",
    "Record",
    "RecordPage",
    "Scores",
    "Stats",
    "Turn",
    "Upload",
    "Usage",
]
__version__ = "0.1.0"
