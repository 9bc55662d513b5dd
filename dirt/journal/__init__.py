"""The journal: the single source of truth of a run.

``events`` defines every event (the schema, in one place); ``writer`` appends
them as they happen; ``reader`` reads them back, line by line, never failing
on a bad line; ``faults`` folds them into each fault's recorded life.  Reports
are rendered from a journal alone, and ``dirt rollback`` acts on one alone.
"""

from dirt.journal.events import SCHEMA_VERSION, Event
from dirt.journal.faults import FaultLedger, FaultLife, FaultState, fold_faults
from dirt.journal.reader import JOURNAL_NAME, JournalContents, read_journal
from dirt.journal.writer import Journal

__all__ = ["JOURNAL_NAME", "SCHEMA_VERSION", "Event", "FaultLedger", "FaultLife", "FaultState", "Journal",
           "JournalContents", "fold_faults", "read_journal"]
