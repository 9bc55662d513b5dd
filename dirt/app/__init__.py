"""Use cases, shared by the command line and the pytest plugin: run drills (``run``), roll a
run back (``rollback``), plan one (``plan``), alert coverage (``coverage``), pick a sandbox
(``sandbox``), and the live display of a run (``display``)."""
