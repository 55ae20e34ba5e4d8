"""The TMS screening questionnaire (after Rossi et al. 2009) and its outcome (pure).

Every item must be answered. A "yes" to an *absolute* contraindication (metal or an
implanted device close to the coil) blocks stimulation. A "yes" to a *relative* one needs a
recorded physician decision before the subject is cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from labkit.errors import ConfigError

SCREENING_CITATION = (
    "Rossi S et al. Safety, ethical considerations, and application guidelines for the use of "
    "transcranial magnetic stimulation in clinical practice and research. Clin Neurophysiol "
    "2009;120:2008-2039 (screening questionnaire; updated in Rossi et al. 2021)."
)

Kind = Literal["absolute", "relative"]


@dataclass(frozen=True)
class ScreeningItem:
    """One question of the questionnaire.

    Attributes
    ----------
    key : str
        Identifier used in answers (``"epilepsy"``).
    question : str
        The question as asked.
    kind : {"absolute", "relative"}
        What a "yes" means.
    """

    key: str
    question: str
    kind: Kind


#: The questionnaire, in the order it is asked.
SCREENING_ITEMS: tuple[ScreeningItem, ...] = (
    ScreeningItem("epilepsy", "Do you have epilepsy or have you ever had a convulsion or a "
                  "seizure?", "relative"),
    ScreeningItem("syncope", "Have you ever had a fainting spell or syncope? If yes, describe "
                  "on which occasion.", "relative"),
    ScreeningItem("head_trauma", "Have you ever had a head trauma that was diagnosed as a "
                  "concussion or was associated with a loss of consciousness?", "relative"),
    ScreeningItem("hearing", "Do you have any hearing problems or ringing in your ears?",
                  "relative"),
    ScreeningItem("pregnancy", "Are you pregnant or is there any chance that you might be?",
                  "relative"),
    ScreeningItem("metal_in_head", "Do you have metal in the brain, skull or elsewhere in "
                  "your head (e.g. splinters, fragments, clips)?", "absolute"),
    ScreeningItem("cochlear_implant", "Do you have cochlear implants?", "absolute"),
    ScreeningItem("neurostimulator", "Do you have an implanted neurostimulator (e.g. DBS, "
                  "epidural/subdural, VNS)?", "absolute"),
    ScreeningItem("pacemaker", "Do you have a cardiac pacemaker or intracardiac lines?",
                  "relative"),
    ScreeningItem("medication_pump", "Do you have a medication infusion device?", "absolute"),
    ScreeningItem("medications", "Are you taking any medications (list them)?", "relative"),
    ScreeningItem("brain_surgery", "Did you ever have surgery on your spinal cord or your "
                  "head?", "relative"),
    ScreeningItem("previous_tms", "Did you ever undergo TMS in the past and have any problems "
                  "with it?", "relative"),
    ScreeningItem("previous_mri", "Did you ever undergo MRI in the past and have any problems "
                  "with it?", "relative"),
)

_ITEMS = {item.key: item for item in SCREENING_ITEMS}


@dataclass(frozen=True)
class PhysicianDecision:
    """A physician's recorded decision on a relative contraindication.

    Attributes
    ----------
    item : str
        The questionnaire key decided on.
    cleared : bool
        True when stimulation may go ahead despite the "yes".
    physician : str
        Who decided.
    note : str
        The reasoning (e.g. "single febrile seizure in infancy").
    """

    item: str
    cleared: bool
    physician: str
    note: str = ""


@dataclass(frozen=True)
class ScreeningResult:
    """Recorded answers and what they mean.

    Attributes
    ----------
    answers : dict
        ``key -> bool`` for every item.
    details : dict
        Free-text details per key (medication list, occasion of syncope...).
    decisions : dict
        ``key -> PhysicianDecision`` for relative contraindications.
    """

    answers: dict[str, bool]
    details: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, PhysicianDecision] = field(default_factory=dict)

    @property
    def absolute(self) -> list[str]:
        """Keys answered "yes" that are absolute contraindications."""
        return [k for k, v in self.answers.items() if v and _ITEMS[k].kind == "absolute"]

    @property
    def relative(self) -> list[str]:
        """Keys answered "yes" that are relative contraindications."""
        return [k for k, v in self.answers.items() if v and _ITEMS[k].kind == "relative"]

    @property
    def pending(self) -> list[str]:
        """Relative contraindications still waiting for a physician decision."""
        return [k for k in self.relative if k not in self.decisions]

    @property
    def cleared(self) -> bool:
        """True when no absolute contraindication and every relative one was cleared."""
        if self.absolute or self.pending:
            return False
        return all(self.decisions[k].cleared for k in self.relative)

    def blocking_reasons(self) -> list[str]:
        """Why the subject is not cleared (empty when cleared)."""
        out = [f"absolute contraindication: {k} ({_ITEMS[k].question})" for k in self.absolute]
        out += [f"relative contraindication needs a physician decision: {k}" for k in self.pending]
        out += [
            f"physician {self.decisions[k].physician} did not clear: {k} "
            f"({self.decisions[k].note})"
            for k in self.relative
            if k in self.decisions and not self.decisions[k].cleared
        ]
        return out

    def with_decision(
        self, item: str, *, cleared: bool, physician: str, note: str = ""
    ) -> ScreeningResult:
        """Record a physician decision on a relative contraindication (returns a new result).

        Raises
        ------
        ConfigError
            ``item`` is not a "yes"-answered relative contraindication (absolute ones
            cannot be cleared), or ``physician`` is empty.
        """
        if item not in _ITEMS:
            raise ConfigError(f"unknown screening item {item!r}; known: {', '.join(_ITEMS)}",
                              field="item")
        if _ITEMS[item].kind == "absolute":
            raise ConfigError(f"{item!r} is an absolute contraindication; no decision clears it",
                              field="item")
        if not self.answers.get(item):
            raise ConfigError(f"{item!r} was answered 'no'; nothing to decide", field="item")
        if not physician.strip():
            raise ConfigError("a decision needs the physician's name", field="physician")
        decisions = {**self.decisions, item: PhysicianDecision(item, cleared, physician, note)}
        return replace(self, decisions=decisions)

    def to_log(self) -> dict:
        """JSON-able record for the session log."""
        return {
            "answers": dict(self.answers),
            "details": dict(self.details),
            "decisions": {k: vars(d) for k, d in self.decisions.items()},
            "absolute": self.absolute,
            "relative": self.relative,
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
