"""What a driver is: the four kinds of building block a scenario names.

A scenario never contains code; it names drivers (``fault: node.delete``,
``check: deployment.available``, ``step: backup.restore``, ``backup: resources``)
and gives them parameters.  Each driver is one small class here-shaped:

* it declares ``kind``, ``name`` and a pydantic ``Params`` model, so the loader can
  validate its parameters with file:line errors and ``dirt schema`` can describe it;
* it receives its validated ``params`` and a ``Context`` (``dirt.drivers.context``:
  the target, the clock, the journal, the backups taken so far) and does its one job.

A fault lives the life of ``dirt.journal.faults``: ``inject`` and
``verify_injected`` take it into effect; a recovery step whose ``resolves``
claims it, or rollback through its ``revert``, takes it out.  ``in_effect``
answers, from the target itself, whether it still is.

The engine knows drivers only through the registry (``dirt.drivers.registry``),
by name; third-party drivers register under the ``dirt.drivers`` entry-point group.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from dirt.drivers.context import Context
from dirt.drivers.results import BackupRecord, CheckResult, StepOutcome
from dirt.journal.faults import FaultLife

Kind = Literal["fault", "check", "step", "backup"]

#: The key that names the driver in a step of each kind (``fault: node.delete``).
DRIVER_KEY: dict[Kind, str] = {"fault": "fault", "check": "check", "step": "step", "backup": "backup"}

#: Keys every step of a kind accepts besides the driver's own parameters.  A driver
#: may declare a ``name`` parameter of its own (``deployment.available`` does: the
#: Deployment's name); its steps are then labelled with ``label`` only.
COMMON_KEYS: dict[Kind, dict[str, str]] = {
    "fault": {
        "name": "a label for the report (unless the driver has a 'name' parameter)",
        "label": "a label for the report",
        "playbook": "playbook link: '#section' or 'path.md#section'",
        "within": "deadline for the fault to take effect",
        "rollback": "whether rollback may revert this fault (default true)",
        "member": "on a fleet target: the member cluster it acts on (required for faults and backups)",
    },
    "check": {
        "name": "a label for the report (unless the driver has a 'name' parameter)",
        "label": "a label for the report",
        "playbook": "playbook link",
        "within": "deadline: the check is retried until it passes or this runs out",
        "interval": "time between attempts (default 1s)",
        "member": "on a fleet target: the member cluster it acts on (without it: every member; http, promql and "
                  "alert checks then ask the fleet)",
    },
    "step": {
        "name": "a label for the report (unless the driver has a 'name' parameter)",
        "label": "a label for the report",
        "playbook": "playbook link",
        "within": "deadline for the step",
        "member": "on a fleet target: the member cluster it acts on (without it: every member; backup.restore "
                  "and fault.revert act where their backup or fault is)",
    },
    "backup": {
        "name": "the backup's name, used by backup.restore (required)",
        "playbook": "playbook link",
        "within": "deadline for taking the backup",
        "member": "on a fleet target: the member cluster it acts on (required for faults and backups)",
    },
}


class Params(BaseModel):
    """Base for driver parameter models: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


class Driver:
    """Common shape of every driver; see the four kinds below."""

    kind: ClassVar[Kind]
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    #: what the target must be able to do beyond the Kubernetes API (names from
    #: ``dirt.targets.base.CAPABILITIES``); the guardrails refuse a drill whose target lacks one
    requires: ClassVar[frozenset[str]] = frozenset()
    #: on a fleet target, a check or step without ``member:`` runs on every member; False for one that
    #: knows its member already (``backup.restore`` acts where its backup was taken)
    each_member: ClassVar[bool] = True

    def __init__(self, params: Params, ctx: Context) -> None:
        self.params = params
        self.ctx = ctx

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.name

    @classmethod
    def requirements(cls, params: Params) -> frozenset[str]:
        """The capabilities this driver needs with these parameters (``requires`` unless overridden)."""
        return cls.requires

    @classmethod
    def check_spec(cls, spec: Any, scenario: Any) -> list[tuple[str, str]]:
        """Load-time checks across fields (``(message, hint)`` pairs; none by default).

        ``scenario`` offers ``backup_names`` and the document's other sections.
        """
        return []


class Fault(Driver):
    """Breaks something.  ``inject`` must return once the break is done."""

    kind: ClassVar[Kind] = "fault"
    #: guardrail family (``dirt.core.families``).  A fault that says nothing is taken
    #: for the most destructive kind: off the sandbox it needs the target's allowance.
    family: ClassVar[str] = "cluster"
    #: whether ``revert`` can undo it (rollback calls it on failure)
    reversible: ClassVar[bool] = False
    #: who undoes it without dirt, when nothing does (a kubelet restarting a container, a
    #: controller recreating pods): ``dirt plan`` says so, and after a passed drill dirt
    #: asks ``in_effect`` whether it did
    heals: ClassVar[str] = ""
    #: whether ``revert`` puts back a safety snapshot (and so loses every write made
    #: since it was taken): never done over a recovered cluster unless asked for
    snapshot_revert: ClassVar[bool] = False

    @classmethod
    def family_for(cls, params: Params | None) -> str:
        """The guardrail family of a fault with these parameters (``family`` unless overridden).

        Guardrails, ``dirt plan``, the journal and the drill lock all ask here, so a driver
        whose family depends on its parameters (``ctk``: the step says) is seen the same way by each.
        """
        return cls.family

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        #: JSON-safe facts recorded at injection (what was deleted, which PIDs...),
        #: journaled so a later ``dirt rollback`` can revert after a crash.
        self.state: dict[str, Any] = {}
        #: ``time.monotonic()`` when the break happened, for faults whose ``inject``
        #: goes on afterwards (a restart, a wait); default: when ``inject`` returned.
        self.effective_at: float | None = None

    def plan(self) -> list[str]:
        """The blast radius, in words, without touching anything."""
        return [self.summary()]

    def inject(self) -> None:
        raise NotImplementedError

    def verify_injected(self) -> CheckResult:
        """Is the fault really in effect?  Polled after ``inject`` until it is, or the deadline.

        It must work while other faults are in effect too (the API server down,
        etcd stopped): ask the component itself, or the target, when the API
        cannot answer.
        """
        return CheckResult(True, "no verification for this fault")

    def in_effect(self) -> CheckResult:
        """Is it still in effect now?  Asked once before a revert (rollback never undoes
        what a recovery already undid) and at the end of a drill.  ``ok`` means *still
        in effect*.  By default the same question as ``verify_injected``."""
        return self.verify_injected()

    def revert(self) -> str:
        """Undo the fault; must be safe to call when already undone.  Returns what it did,
        in words ("" when there is nothing to say)."""
        return ""


def fault_family(cls: type[Driver] | None, params: Params | None) -> str:
    """The guardrail family of a fault step: its driver's ``family_for(params)``; a driver
    that is not (or no longer) a registered fault is taken for the most destructive kind."""
    if isinstance(cls, type) and issubclass(cls, Fault):
        return cls.family_for(params)
    return Fault.family


class Check(Driver):
    """Observes the system; never changes it."""

    kind: ClassVar[Kind] = "check"

    def probe(self) -> CheckResult:
        raise NotImplementedError


class RecoveryStep(Driver):
    """Does one recovery action and returns when it is done (raising if it failed)."""

    kind: ClassVar[Kind] = "step"

    def plan(self) -> list[str]:
        return [self.summary()]

    def run(self) -> StepOutcome:
        raise NotImplementedError

    def resolves(self, fault: FaultLife) -> str | None:
        """After ``run`` succeeded: does this step undo ``fault`` (a fault still in effect)?

        Return how, in a few words ("started kube-apiserver"), or None.  The engine
        records the answer as the fault's recovery; ``dirt plan`` asks the same of
        planned faults to show each fault's life in advance, so decide from the
        parameters and the fault's record only, never by touching the target.
        """
        return None


class Backup(Driver):
    """Takes (or finds) a backup in preflight, and restores it on request."""

    kind: ClassVar[Kind] = "backup"

    def plan(self) -> list[str]:
        return [self.summary()]

    def take(self, name: str) -> BackupRecord:
        raise NotImplementedError

    def restore(self, record: BackupRecord) -> StepOutcome:
        raise NotImplementedError

    def resolves(self, fault: FaultLife, record: BackupRecord | None) -> str | None:
        """After restoring ``record`` (None in ``dirt plan``): is ``fault`` undone?
        See ``RecoveryStep.resolves``; decide from parameters and records only."""
        return None
