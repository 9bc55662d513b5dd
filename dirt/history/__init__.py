"""The run history: every drill and game day dirt ran, kept to answer "is detection getting faster,
did last quarter's restore still work, which backups were never proven?".

``open_store(url, reports_dir)`` gives a ``HistoryStore`` (SQLite by default, PostgreSQL
when dirt.yaml says ``history: postgresql://...``); ``dirt.history.analysis`` turns its
records into trends, regressions, scores, overdue drills and unproven backups.  This
package imports only ``dirt.core``, SQLAlchemy and alembic.
"""

from dirt.history.records import (
                                  AlertRecord,
                                  BackupRecord,
                                  BackupTally,
                                  DrillRecord,
                                  GameDayRecord,
                                  HistorySummary,
                                  RestoreRecord,
                                  RunRecord,
                                  StepRecord,
)
from dirt.history.store import HistoryStore, open_store, store_url

__all__ = ["AlertRecord", "BackupRecord", "BackupTally", "DrillRecord", "GameDayRecord", "HistoryStore",
           "HistorySummary", "RestoreRecord", "RunRecord", "StepRecord", "open_store", "store_url"]
