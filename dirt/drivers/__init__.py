"""What every driver family builds on: the driver bases (``base``), what a driver may use
during a run (``context``), what it hands back (``results``), the registry of drivers
by name (``registry``), and helpers shared by more than one family (``commands``,
``kube``, ``resources``).

Families (``dirt.faults``, ``dirt.checks``, ``dirt.recovery``) import from here and
never from each other.
"""

from dirt.drivers.base import (
           COMMON_KEYS,
           DRIVER_KEY,
           Backup,
           Check,
           Driver,
           Fault,
           Kind,
           NoParams,
           Params,
           RecoveryStep,
           fault_family,
)
from dirt.drivers.context import CancelToken, Context, FaultControl
from dirt.drivers.results import BackupRecord, CheckResult, StepOutcome

__all__ = ["COMMON_KEYS", "DRIVER_KEY", "Backup", "BackupRecord", "CancelToken", "Check", "CheckResult", "Context",
           "Driver", "Fault", "FaultControl", "Kind", "NoParams", "Params", "RecoveryStep", "StepOutcome",
           "fault_family"]
