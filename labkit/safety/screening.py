"""The TMS screening questionnaire (Rossi et al. 2009, revised 2011) and its outcome (pure).

The questionnaire is the revision of Rossi et al. (2011): the 2009 question on spinal-cord
surgery was dropped (spinal surgery is not a contraindication by itself) and so was the one
on spinal or ventricular derivations; the metal question asks about metal anywhere in the
body, with its type. Rossi et al. (2021) keep the 2009/2011 screening valid and discuss
stimulation of people with implanted devices case by case.

No answer blocks stimulation by itself. The IFCN consensus (Rossi 2011) is that a "yes"
is not an absolute contraindication: the risk/benefit ratio is weighed by the principal
investigator or the responsible (treating) physician. So every "yes" needs a recorded
decision (:meth:`ScreeningResult.with_decision`) before the subject is cleared, and for an
implant (metal, cochlear implant, neurostimulator, pacemaker or intracardiac lines,
infusion pump) the decision must say where the implant is: its distance from the coil is
what the decision rests on (Rossi 2009: the risk is hardware close to the discharging
coil).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from labkit.errors import ConfigError

SCREENING_CITATION = (
    "Rossi S, Hallett M, Rossini PM, Pascual-Leone A. Screening questionnaire before TMS: an "
    "update. Clin Neurophysiol 2011;122:1686 (revision of the questionnaire in Rossi et al. "
    "2009, Clin Neurophysiol 120:2008-2039; screening kept valid by Rossi et al. 2021, Clin "
    "Neurophysiol 132:269-306)."
)

Kind = Literal["condition", "implant"]


@dataclass(frozen=True)
class ScreeningItem:
    """One question of the questionnaire.

    Attributes
    ----------
    key : str
        Identifier used in answers (``"epilepsy"``).
    question : str
        The question as asked.
    kind : {"condition", "implant"}
        ``"implant"``: a "yes" means hardware in the body, and the decision on it must
        record where it is.
    """

    key: str
    question: str
    kind: Kind


#: The questionnaire (Rossi 2011), in the order it is asked.
SCREENING_ITEMS: tuple[ScreeningItem, ...] = (
    ScreeningItem("epilepsy", "Do you have epilepsy or have you ever had a convulsion or a "
                  "seizure?", "condition"),
    ScreeningItem("syncope", "Have you ever had a fainting spell or syncope? If yes, describe "
                  "on which occasion(s).", "condition"),
    ScreeningItem("head_trauma", "Have you ever had a head trauma that was diagnosed as a "
                  "concussion or was associated with a loss of consciousness?", "condition"),
    ScreeningItem("hearing", "Do you have any hearing problems or ringing in your ears?",
                  "condition"),
    ScreeningItem("cochlear_implant", "Do you have cochlear implants?", "implant"),
    ScreeningItem("pregnancy", "Are you pregnant or is there any chance that you might be?",
                  "condition"),
    ScreeningItem("metal", "Do you have metal in the brain, skull or elsewhere in your body "
                  "(e.g. splinters, fragments, clips)? If so, specify the type of metal.",
                  "implant"),
    ScreeningItem("neurostimulator", "Do you have an implanted neurostimulator (e.g. DBS, "
                  "epidural/subdural, VNS)?", "implant"),
    ScreeningItem("pacemaker", "Do you have a cardiac pacemaker or intracardiac lines?",
                  "implant"),
    ScreeningItem("medication_pump", "Do you have a medication infusion device?", "implant"),
    ScreeningItem("medications", "Are you taking any medications (list them)?", "condition"),
    ScreeningItem("previous_tms", "Did you ever undergo TMS in the past? If so, were there "
                  "any problems?", "condition"),
    ScreeningItem("previous_mri", "Did you ever undergo MRI in the past? If so, were there "
                  "any problems?", "condition"),
)

_ITEMS = {item.key: item for item in SCREENING_ITEMS}


@dataclass(frozen=True)
class PhysicianDecision:
    """The recorded decision on one "yes" answer.

    Attributes
    ----------
    item : str
        The questionnaire key decided on.
    cleared : bool
        True when stimulation may go ahead despite the "yes".
    physician : str
        Who decided: the responsible physician or the principal investigator.
    note : str
        The reasoning (e.g. "single febrile seizure in infancy").
    location : str | None
        Where the implant is (``"left subclavian pocket, ~35 cm from the coil"``);
        required for implant items, ``None`` for the others.
    """

    item: str
    cleared: bool
    physician: str
    note: str = ""
    location: str | None = None


@dataclass(frozen=True)
class ScreeningResult:
    """Recorded answers and what they mean.

    Attributes
    ----------
    answers : dict
        ``key -> bool`` for every item.
    details : dict
        Free-text details per key (medication list, occasion of syncope, type of metal...).
    decisions : dict
        ``key -> PhysicianDecision`` for "yes" answers.
    """

    answers: dict[str, bool]
    details: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, PhysicianDecision] = field(default_factory=dict)

    @property
    def positive(self) -> list[str]:
        """Keys answered "yes", in questionnaire order."""
        return [k for k, v in self.answers.items() if v]

    @property
    def implants(self) -> list[str]:
        """Keys answered "yes" that are implants."""
        return [k for k in self.positive if _ITEMS[k].kind == "implant"]

    @property
    def pending(self) -> list[str]:
        """"Yes" answers still waiting for a decision."""
        return [k for k in self.positive if k not in self.decisions]

    @property
    def cleared(self) -> bool:
        """True when every "yes" was decided on and every decision cleared the subject."""
        return not self.pending and all(self.decisions[k].cleared for k in self.positive)

    def blocking_reasons(self) -> list[str]:
        """Why the subject is not cleared (empty when cleared)."""
        out = []
        for key in self.pending:
            if _ITEMS[key].kind == "implant":
                out.append(f"implant needs a physician decision with its location: {key}")
            else:
                out.append(f"relative contraindication needs a physician decision: {key}")
        for key in self.positive:
            decision = self.decisions.get(key)
            if decision is not None and not decision.cleared:
                where = f", {decision.location}" if decision.location else ""
                out.append(f"physician {decision.physician} did not clear: {key} "
                           f"({decision.note}{where})")
        return out

    def with_decision(
        self, item: str, *, cleared: bool, physician: str, note: str = "",
        location: str | None = None,
    ) -> ScreeningResult:
        """Record the decision on a "yes" answer (returns a new result).

        Parameters
        ----------
        item : str
            The questionnaire key.
        cleared : bool
            Whether stimulation may go ahead.
        physician : str
            Who decided (responsible physician or principal investigator).
        note : str
            The reasoning.
        location : str | None
            Where the implant is; required for implant items, refused for the others.

        Raises
        ------
        ConfigError
            ``item`` is unknown or was answered "no"; ``physician`` is empty; an implant
            decision has no location, or a non-implant decision has one.
        """
        if item not in _ITEMS:
            raise ConfigError(f"unknown screening item {item!r}; known: {', '.join(_ITEMS)}",
                              field="item")
        if not self.answers.get(item):
            raise ConfigError(f"{item!r} was answered 'no'; nothing to decide", field="item")
        if not isinstance(cleared, bool):
            raise ConfigError(f"must be True or False, got {cleared!r}", field="cleared")
        if not isinstance(physician, str) or not physician.strip():
            raise ConfigError("a decision needs the physician's name", field="physician")
        implant = _ITEMS[item].kind == "implant"
        if implant and (not isinstance(location, str) or not location.strip()):
            raise ConfigError(f"{item!r} is an implant: record where it is (e.g. 'right "
                              "cochlea', 'left chest, ~35 cm from the coil')", field="location")
        if not implant and location is not None:
            raise ConfigError(f"{item!r} is not an implant; a location is recorded for "
                              "implant items only", field="location")
        decision = PhysicianDecision(item, cleared, physician.strip(), note,
                                     location.strip() if implant else None)
        return replace(self, decisions={**self.decisions, item: decision})

    def to_log(self) -> dict:
        """JSON-able record for the session log."""
        return {
            "answers": dict(self.answers),
            "details": dict(self.details),
            "decisions": {k: asdict(d) for k, d in self.decisions.items()},
            "positive": self.positive,
            "implants": self.implants,
            "pending": self.pending,
            "cleared": self.cleared,
            "citation": SCREENING_CITATION,
        }


def screen(answers: Mapping[str, bool], details: Mapping[str, str] | None = None
           ) -> ScreeningResult:
    """Record a completed questionnaire.

    Parameters
    ----------
    answers : mapping of str to bool
        One answer per :data:`SCREENING_ITEMS` key (True = "yes").
    details : mapping of str to str | None
        Free text per key.

    Returns
    -------
    ScreeningResult
        The answers; see :attr:`ScreeningResult.cleared`.

    Raises
    ------
    ConfigError
        An item is unanswered, unknown, or not a bool.
    """
    unknown = sorted(set(answers) - set(_ITEMS))
    if unknown:
        raise ConfigError(f"unknown screening items {unknown}; known: {', '.join(_ITEMS)}",
                          field="answers")
    missing = [k for k in _ITEMS if k not in answers]
    if missing:
        raise ConfigError(f"every item must be answered; missing: {', '.join(missing)}",
                          field="answers")
    for key, value in answers.items():
        if not isinstance(value, bool):
            raise ConfigError(f"answer must be True or False (got {value!r})",
                              field=f"answers.{key}")
    details = dict(details or {})
    bad = sorted(set(details) - set(_ITEMS))
    if bad:
        raise ConfigError(f"details for unknown items {bad}", field="details")
    return ScreeningResult(answers={k: answers[k] for k in _ITEMS}, details=details)
