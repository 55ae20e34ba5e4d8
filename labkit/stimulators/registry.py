"""The vendor registry: stimulator model -> driver, emulator and declared abilities.

Profiles name a model from :data:`MODELS`; :func:`labkit.open_rig` builds its driver from
here; the simulator starts the matching emulator; the safety check and the runner read
the abilities. Adding a model is one entry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from labkit.errors import ConfigError
from labkit.stimulators import magpro_protocol, magstim_protocol
from labkit.stimulators.capabilities import Abilities

__all__ = ["MANUFACTURERS", "MODELS", "ModelSpec", "abilities_for_driver", "driver_class",
           "manufacturer", "model_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """One stimulator model.

    Attributes
    ----------
    key : str
        The profile's ``stimulator.model``.
    driver : str
        Driver class in :mod:`labkit.stimulators`.
    driver_options : dict
        Extra constructor arguments (e.g. the MagPro model).
    emulator : tuple of (str, str)
        ``(vendor, model)`` of the emulator in :mod:`labkit.sim`.
    abilities : Abilities
        What the unit can do.
    """

    key: str
    driver: str
    driver_options: dict
    emulator: tuple[str, str]
    abilities: Abilities


def _rapid_rate(variant: str, voltage: int):
    def rate(power_percent: int) -> float:
        return magstim_protocol.max_frequency_hz(max(1, min(100, power_percent)), variant,
                                                 voltage)
    return rate


_RAPID_NAMES = {"rapid2": ("magstim-rapid2", "Magstim Rapid²"),
                "super_rapid2": ("magstim-super-rapid2", "Magstim Super Rapid²"),
                "super_rapid2_plus": ("magstim-super-rapid2-plus", "Magstim Super Rapid² Plus")}


def _rapid_specs() -> tuple[ModelSpec, ...]:
    """Rapid² family: one model per variant and mains voltage (their ceilings differ)."""
    specs = []
    for variant, (key, name) in _RAPID_NAMES.items():
        for voltage in magstim_protocol.MAINS_VOLTAGES:
            suffix = "" if voltage == 240 else f"-{voltage}v"
            specs.append(ModelSpec(
                key + suffix, "Rapid", {"variant": variant, "voltage": voltage},
                ("magstim", "rapid"),
                Abilities(f"{name} ({voltage} V)" if suffix else name, repetitive=True,
                          device_train=True, coil_temperature=True,
                          max_rate=_rapid_rate(variant, voltage),
                          rate_source=f"{name} frequency-ceiling table ({voltage} V)")))
    return tuple(specs)


def _magpro_rate(model: str):
    def rate(_power_percent: int) -> float:
        return magpro_protocol.max_rep_rate_hz(model)
    return rate


MODELS: dict[str, ModelSpec] = {spec.key: spec for spec in (
    ModelSpec("magstim-200", "Magstim", {}, ("magstim", "200"),
              Abilities("Magstim 200²", coil_temperature=True)),
    ModelSpec("magstim-bistim", "BiStim", {}, ("magstim", "bistim"),
              Abilities("Magstim BiStim²", paired_pulse=True, separate_outputs=True,
                        coil_temperature=True)),
    *_rapid_specs(),
    ModelSpec("magventure-r30", "MagPro", {"model": "R30"}, ("magpro", "R30"),
              Abilities("MagVenture MagPro R30", repetitive=True, device_train=True,
                        coil_temperature=True,
                        max_rate=_magpro_rate("R30"), rate_source="MagPro R30 rate ceiling")),
    ModelSpec("magventure-x100", "MagPro", {"model": "X100"}, ("magpro", "X100"),
              Abilities("MagVenture MagPro X100", repetitive=True, device_train=True,
                        coil_temperature=True,
                        max_rate=_magpro_rate("X100"),
                        rate_source="MagPro X100 rate ceiling")),
    # DuoMAG: single pulses only over the public protocol (the XT's trains have no public
    # serial commands, and no published rate ceiling to check host-timed trains against).
    ModelSpec("deymed-duomag-mp", "DuoMAG", {"model": "MP"}, ("duomag", "MP"),
              Abilities("Deymed DuoMAG MP")),
    ModelSpec("deymed-duomag-xt", "DuoMAG", {"model": "XT"}, ("duomag", "XT"),
              Abilities("Deymed DuoMAG XT")),
    ModelSpec("deymed-duomag-mp-dual", "DuoMAG", {"model": "MP-Dual"}, ("duomag", "MP-Dual"),
              Abilities("Deymed DuoMAG MP-Dual", paired_pulse=True)),
)}


#: Manufacturer of each vendor family (the first item of :attr:`ModelSpec.emulator`).
MANUFACTURERS = {"magstim": "Magstim", "magpro": "MagVenture", "duomag": "Deymed"}


def manufacturer(key: str) -> str:
    """The manufacturer of model ``key`` (``"Magstim"``), for the session record and BIDS."""
    return MANUFACTURERS[model_spec(key).emulator[0]]


def model_spec(key: str) -> ModelSpec:
    """The registry entry of ``key``; :class:`ConfigError` listing the models otherwise."""
    try:
        return MODELS[key]
    except KeyError:
        raise ConfigError(f"unknown stimulator model {key!r}; known: {sorted(MODELS)}",
                          field="stimulator.model") from None


def driver_class(key: str) -> type[Any]:
    """The driver class of model ``key``."""
    module = importlib.import_module("labkit.stimulators")
    return getattr(module, model_spec(key).driver)


def abilities_for_driver(stimulator: Any) -> Abilities:
    """The registry's abilities for a driver built without a profile.

    A driver matches the first model of its class whose ``driver_options`` it carries as
    attributes (a MagPro or DuoMAG by ``model``, a Rapid by ``variant`` and ``voltage``).
    """
    name = type(stimulator).__name__

    def value(option: str) -> Any:
        found = getattr(stimulator, option, None)
        if option == "model" and name == "MagPro" and isinstance(found, str):
            return found.split("+")[0]  # options (twin/dual) keep the family's abilities
        return found

    for spec in MODELS.values():
        if spec.driver == name and all(value(k) == v for k, v in spec.driver_options.items()):
            return spec.abilities
    return Abilities(name)
