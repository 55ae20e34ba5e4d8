"""An emulated MagVenture MagPro (R30, X100) that speaks the serial protocol byte for byte.

Reachable as ``emulator.url`` (in-process pyserial URL) and ``emulator.pty_path`` (POSIX
pseudo-terminal), like every :class:`~labkit.sim.transport.SerialEmulator`.

Behaviour, and the choices made where public sources are silent:

* Frames are cut out of the byte stream with
  :class:`~labkit.stimulators.magpro_protocol.FrameExtractor`: garbage before ``0xFE`` is
  discarded, malformed frames are skipped. **A frame with a bad CRC is ignored (no
  reply)**, so the host times out; it is counted in :attr:`MagProEmulator.crc_errors`.
  Unknown command ids are logged in :attr:`received` and not answered.
* Replies (message ids): status 0x00 → 0x00; amplitude 0x01 and enable/disable 0x02 →
  0x01 (amplitudes + info byte); single pulse 0x03 → 0x02 (di/dt) after the discharge,
  or 0x01 when disabled (no discharge); start train 0x04 → 0x08 (page, running);
  status 2 0x05 → 0x05; train parameters 0x06 → 0x0B (timing menu echo; values outside
  the unit's ranges are refused and the old values echoed); page 0x07 → 0x08;
  mode block 0x09 → 0x09.
* A train runs only when the unit is enabled and shows the train page; a timer thread
  delivers one :class:`~labkit.sim.events.Discharge` per pulse to the coil and sends a
  di/dt message per pulse, then 0x08 with ``running = 0`` at the end. Disabling stops it.
* Out-of-range amplitudes (> 100) are not applied; the reply reports the unchanged value.
* The coil warms by ``0.01 °C · (amplitude/100)²`` per pulse and cools towards
  23 °C with a 10-minute time constant.
* No keep-alive is required: the MagPro keeps serial control without one.
"""

from __future__ import annotations

import random
import threading
import time

from labkit.clock import local_clock
from labkit.errors import ConfigError, CRCError, StimulatorProtocolError
from labkit.sim.events import Coil, Discharge
from labkit.sim.transport import SerialEmulator
from labkit.stimulators import magpro_protocol as proto

__all__ = ["MagProEmulator"]

AMBIENT_C = 23.0
WARMING_C_PER_PULSE = 0.01
COOLING_TAU_S = 600.0
#: di/dt at 100 % output with the default coil (MagVenture Cool-B65 on an X100), A/µs.
DIDT_AT_FULL_OUTPUT = 160.0
COOL_B65 = 60


class MagProEmulator(SerialEmulator):
    """A MagPro that answers the serial protocol and delivers discharges to a coil.

    Parameters
    ----------
    model : str
        One of :data:`~labkit.stimulators.magpro_protocol.MODELS`.
    coil : callable | None
        Receives one :class:`~labkit.sim.events.Discharge` per pulse.
    name : str | None
        Registry name in the URL ``labkitsim://<name>``.
    pty : bool
        Also open a pseudo-terminal (POSIX).
    seed : int
        Seeds the serial number.

    Attributes
    ----------
    enabled : bool
    amplitude_percent, amplitude_b_percent : int
    pulses_delivered : int
    coil_temperature_c : float
    page : str
    train : TrainSettings
    received : list[bytes]
        Payloads of every valid frame received, in order.
    discharges : list[Discharge]
        Every discharge delivered.
    crc_errors, malformed_frames : int
        Frames ignored for a bad CRC / a malformed shape.
    """

    def __init__(
        self,
        model: str = "X100",
        *,
        coil: Coil | None = None,
        name: str | None = None,
        pty: bool = True,
        seed: int = 0,
    ) -> None:
        if model not in proto.MODELS:
            raise ConfigError(f"model must be one of {list(proto.MODELS)}, got {model!r}",
                              field="model")
        self.model = model
        self.device = f"magpro-{model.lower()}"
        self.coil = coil
        self.serial_number = random.Random(seed).randrange(100_000, 1_000_000)
        self.coil_type = COOL_B65
        self.enabled = False
        self.amplitude_percent = 0
        self.amplitude_b_percent = 0
        self.mode = "standard"
        self.waveform = "biphasic"
        self.current_direction = "normal"
        self.burst_pulses = 2
        self.ipi_ms = 10.0
        self.ba_ratio = 1.0
        self.page = "main"
        self.train = proto.TrainSettings(1.0, 5, 3, 1.0)
        self.pulses_delivered = 0
        self.coil_temperature_c = AMBIENT_C
        self.received: list[bytes] = []
        self.discharges: list[Discharge] = []
        self.crc_errors = 0
        self.malformed_frames = 0
        #: Exceptions raised by the coil callback (the emulator keeps running).
        self.coil_errors: list[BaseException] = []
        self._extractor = proto.FrameExtractor()
        self._state = threading.RLock()
        self._train_thread: threading.Thread | None = None
        self._train_stop = threading.Event()
        self._last_cool_s = time.monotonic()
        super().__init__(name, pty=pty)

    # ----------------------------------------------------------------- state
    @property
    def train_running(self) -> bool:
        """True while a train sequence is being delivered."""
        thread = self._train_thread
        return thread is not None and thread.is_alive()

    def _info(self) -> proto.UnitInfo:
        return proto.UnitInfo(self.model, self.mode, self.waveform, self.enabled)

    def _send(self, reply) -> None:
        self.reply(proto.build_frame(reply.to_payload()))

    def _amplitude_reply(self) -> proto.AmplitudeReply:
        return proto.AmplitudeReply(self.amplitude_percent, self.amplitude_b_percent,
                                    self._info())

    def _page_reply(self, running: bool | None = None) -> proto.PageReply:
        running = self.train_running if running is None else running
        return proto.PageReply(self.page, running, self._info())

    def _status_fields(self) -> dict:
        return dict(
            info=self._info(), serial_number=self.serial_number,
            coil_temperature_c=max(0, min(255, round(self.coil_temperature_c))),
            coil_type=self.coil_type, amplitude_a_percent=self.amplitude_percent,
            amplitude_b_percent=self.amplitude_b_percent,
        )

    def _mode_block(self) -> proto.ModeBlock:
        return proto.ModeBlock(
            self.model, self.mode, self.current_direction, self.waveform, self.burst_pulses,
            proto.ipi_index_from_ms(self.ipi_ms, self.mode, self.waveform),
            max(0, min(255, round((5.0 - self.ba_ratio) / 0.05))),
        )

    # ----------------------------------------------------------------- protocol
    def handle_bytes(self, data: bytes) -> None:
        """Cut frames out of ``data`` and answer each like the unit."""
        self._extractor.feed(data)
        while True:
            try:
                payload = self._extractor.next_payload()
            except CRCError:
                self.crc_errors += 1
                continue
            except StimulatorProtocolError:
                self.malformed_frames += 1
                continue
            if payload is None:
                return
            self.received.append(payload)
            with self._state:
                self._dispatch(payload)

    def _dispatch(self, payload: bytes) -> None:
        cid = payload[0]
        if cid == proto.Command.STATUS:
            self._send(proto.StatusReply(**self._status_fields()))
        elif cid == proto.Command.STATUS2:
            self._send(proto.Status2Reply(
                **self._status_fields(),
                original_amplitude_a_percent=self.amplitude_percent,
                original_amplitude_b_percent=self.amplitude_b_percent,
                amplitude_factor_a_percent=100, amplitude_factor_b_percent=100,
                page=self.page, train_running=self.train_running))
        elif cid == proto.Command.AMPLITUDE:
            values = payload[1:3]
            if values and all(v <= 100 for v in values):
                self.amplitude_percent = values[0]
                if len(values) > 1:
                    self.amplitude_b_percent = values[1]
            self._send(self._amplitude_reply())
        elif cid == proto.Command.ENABLE and len(payload) >= 2:
            self.enabled = bool(payload[1])
            if not self.enabled:
                self._train_stop.set()
            self._send(self._amplitude_reply())
        elif cid == proto.Command.SINGLE_PULSE:
            if self.enabled:
                self._discharge()
            else:
                self._send(self._amplitude_reply())
        elif cid == proto.Command.START_TRAIN:
            if self.enabled and self.page == "train" and not self.train_running:
                self._start_train()
                self._send(self._page_reply(True))
            else:
                self._send(self._page_reply())
        elif cid == proto.Command.TRAIN_PARAMETERS and len(payload) >= 9:
            self._set_train(payload)
        elif cid == proto.Command.PAGE and len(payload) >= 2:
            if payload[1] in proto.SETTABLE_PAGES.values():
                self.page = proto.PAGES[payload[1]]
            self._send(self._page_reply())
        elif cid == proto.Command.MODE_BLOCK:
            self._mode_block_command(payload)

    def _set_train(self, payload: bytes) -> None:
        rate, pulses, trains, iti = (int.from_bytes(payload[i:i + 2], "big")
                                     for i in (1, 3, 5, 7))
        try:
            if not self.train_running:
                self.train = proto.validate_train(rate / 10, pulses, trains, iti / 10,
                                                  model=self.model, waveform=self.waveform)
        except ConfigError:
            pass  # the unit keeps its old values; the echo shows the host they differ
        t = self.train
        self._send(proto.TimingReply(t.rep_rate_hz, t.pulses_in_train, t.number_of_trains,
                                     t.iti_s))

    def _mode_block_command(self, payload: bytes) -> None:
        try:
            parsed = proto.parse_mode_block_command(payload)
        except StimulatorProtocolError:
            self.malformed_frames += 1
            return
        if parsed is not None:
            block, ipi_ms, ba_ratio = parsed
            self.mode, self.current_direction = block.mode, block.current_direction
            self.waveform, self.burst_pulses = block.waveform, block.burst_pulses
            self.ipi_ms, self.ba_ratio = ipi_ms, ba_ratio
        self._send(self._mode_block())

    # ----------------------------------------------------------------- discharges
    def _discharge(self) -> None:
        with self._state:
            amplitude = self.amplitude_percent
            self.pulses_delivered += 1
            self.coil_temperature_c += WARMING_C_PER_PULSE * (amplitude / 100) ** 2
            event = Discharge(time_s=local_clock(), intensity_percent=float(amplitude),
                              device=self.device)
            self.discharges.append(event)
            didt = min(255, round(amplitude * DIDT_AT_FULL_OUTPUT / 100))
            info = self._info()
        if self.coil is not None:
            try:
                self.coil(event)
            except Exception as exc:  # a broken subject must not kill the unit
                self.coil_errors.append(exc)
        self._send(proto.DidtReply(didt, 0, info))

    def _start_train(self) -> None:
        self._train_stop.clear()
        settings = self.train
        self._train_thread = threading.Thread(
            target=self._run_train, args=(settings, local_clock()), daemon=True,
            name=f"{self.name}-train")
        self._train_thread.start()

    def _run_train(self, settings: proto.TrainSettings, start_s: float) -> None:
        period_s = 1.0 / settings.rep_rate_hz
        train_start_s = start_s
        for train in range(settings.number_of_trains):
            if train:
                train_start_s += settings.train_duration_s + settings.iti_s
            for pulse in range(settings.pulses_in_train):
                due_s = train_start_s + pulse * period_s
                if self._train_stop.wait(max(0.0, due_s - local_clock())):
                    break
                if self._stop.is_set() or not self.enabled:
                    break
                self._discharge()
            if self._train_stop.is_set() or self._stop.is_set() or not self.enabled:
                break
        with self._state:
            self._train_thread = None
            self._send(self._page_reply(False))

    def stop_train(self) -> None:
        """Stop a running train (as the unit's stop button would)."""
        self._train_stop.set()
        thread = self._train_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def tick(self) -> None:
        """Cool the coil towards ambient temperature."""
        now = time.monotonic()
        dt_s, self._last_cool_s = now - self._last_cool_s, now
        with self._state:
            excess = self.coil_temperature_c - AMBIENT_C
            self.coil_temperature_c = AMBIENT_C + excess * max(0.0, 1 - dt_s / COOLING_TAU_S)

    def stop(self) -> None:
        """Stop any train, then the transports."""
        self.stop_train()
        super().stop()

    close = stop
