"""The S3 archive of delivered interactions: Personalize-importable CSV (the bulk path).

`ArchiveSink` is what the worker wires in; `worker.archive.csv` is the pure encoder.
"""

from worker.archive.sink import ArchiveSink
from worker.config.archive import ArchiveSettings

__all__ = ["ArchiveSettings", "ArchiveSink"]
