"""Game days: plans of drills run together, once or on a schedule.

The format (``model``), loading with located errors (``loader``) and the calendar
(``schedule``: cron times in a time zone, jitter, blackouts).  Running a game day
is ``dirt.app.gameday``'s work; this package only reads and reasons about plans.
"""

from dirt.gameday.loader import approved_by_problem, gameday_files, load_gameday
from dirt.gameday.model import (
    Approval,
    Blackout,
    DrillEntry,
    GameDay,
    GameDayDocument,
    Notify,
    Participant,
    Schedule,
    gameday_schema,
)

__all__ = ["Approval", "Blackout", "DrillEntry", "GameDay", "GameDayDocument", "Notify", "Participant", "Schedule",
           "approved_by_problem", "gameday_files", "gameday_schema", "load_gameday"]
