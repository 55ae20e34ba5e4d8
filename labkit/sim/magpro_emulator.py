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
  0x01 (amplitudes + info byte); single pulse 0x03 (``03`` or ``03 01``) → 0x02 (di/dt)
  after the discharge, or 0x01 when disabled (no discharge); start train 0x04 → 0x08
  (page, running); status 2 0x05 → 0x05; train parameters 0x06 → 0x0B (timing menu
  echo; values outside the unit's ranges are refused and the old values echoed); page
  0x07 (``07 p`` or ``07 p 00``) → 0x08; MAGIC's trigger/charge delay 0x08 → 0x01;
  mode block 0x09 (get with or without MAGIC's nine padding bytes) → 0x09; delays 0x0A,
  timing menu 0x0B and page/count 0x0C (get ``xx 00`` and set ``xx 01 …``) → the same id.
* The public sources disagree on some answers, so three switches pick a reading:
  ``train_ack="timing"`` answers 0x06 with the 0x0B timing menu (MagventurePyTMS's
  reading), ``"short"`` with one 8-byte 0x01 message (MAGIC and magicpy read one 8-byte
  frame; which message it is they do not say: 0x01 is this emulator's choice);
  ``enable_replies=3`` answers enable with three 8-byte messages (0x01, 0x03 coil, 0x01),
  as magicpy says an X100 does; ``timing_menu=False`` leaves 0x0A/0x0B/0x0C unanswered,
  like a unit whose firmware predates them (an assumption, for testing the driver).
  ``MagProEmulator.magic_style()`` sets all three the MAGIC way.
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
    train_ack : {"timing", "short"}
        How command 0x06 is answered (see the module notes).
    enable_replies : {1, 3}
        Messages sent after enable.
    timing_menu : bool
        Answer 0x0A, 0x0B and 0x0C.

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
        train_ack: str = "timing",
        enable_replies: int = 1,
        timing_menu: bool = True,
    ) -> None:
        if train_ack not in ("timing", "short"):
            raise ConfigError(f"train_ack must be 'timing' or 'short', got {train_ack!r}",
                              field="train_ack")
        if enable_replies not in (1, 3):
            raise ConfigError(f"enable_replies must be 1 or 3, got {enable_replies!r}",
                              field="enable_replies")
        self.train_ack = train_ack
        self.enable_replies = enable_replies
        self.timing_menu = bool(timing_menu)
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
        #: Timing-menu fields beyond the train (see TimingReply).
        self.timing_control = 0
        self.prior_warning_sound = True
        self.ramp_up_percent = 100
        self.ramp_up_trains = 10
        self.extended_rate = False
        #: Trigger-in, trigger-out delays (ms) and charge delay (ms).
        self.delays_ms = (0.0, 0.0, 0)
        self.pulses_delivered = 0
        self.coil_temperature_c = AMBIENT_C
        self.received: list[bytes] = []
        self.discharges: list[Discharge] = []
        self.crc_errors = 0
        self.malformed_frames = 0
        #: Trigger-input edges while disabled (no discharge).
        self.ignored_triggers = 0
        #: Exceptions raised by the coil callback (the emulator keeps running).
        self.coil_errors: list[BaseException] = []
        self._extractor = proto.FrameExtractor()
        self._state = threading.RLock()
        self._train_thread: threading.Thread | None = None
        self._train_stop = threading.Event()
        self._last_cool_s = time.monotonic()
        super().__init__(name, pty=pty)

    @classmethod
    def magic_style(cls, model: str = "X100", **options) -> MagProEmulator:
        """A unit answering the way MAGIC and magicpy read it: 0x06 → one short message,
        enable → three messages, no timing/delay/count menus. ``**options`` are the other
        constructor arguments of :class:`MagProEmulator` (``name``, ``pty``...)."""
        options.update(train_ack="short", enable_replies=3, timing_menu=False)
        return cls(model, **options)

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
            if self.enable_replies == 3:
                self._send(proto.TemperatureReply(
                    max(0, min(255, round(self.coil_temperature_c))), self.coil_type,
                    self._info()))
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
            self._set_train(*(int.from_bytes(payload[i:i + 2], "big") for i in (1, 3, 5, 7)))
            if self.train_ack == "timing":
                self._send(self._timing_reply())
            else:
                self._send(self._amplitude_reply())
        elif cid == proto.Command.PAGE and len(payload) >= 2:
            if payload[1] in proto.SETTABLE_PAGES.values():
                self.page = proto.PAGES[payload[1]]
            self._send(self._page_reply())
        elif cid == proto.Command.TRIG_CHARGE_DELAY and len(payload) >= 7:
            self.delays_ms = (int.from_bytes(payload[1:3], "big") / 10,
                              int.from_bytes(payload[3:5], "big", signed=True) / 10,
                              int.from_bytes(payload[5:7], "big"))
            self._send(self._amplitude_reply())
        elif cid == proto.Command.MODE_BLOCK:
            self._mode_block_command(payload)
        elif cid in (proto.Command.DELAYS, proto.Command.TIMING, proto.Command.PAGE_COUNT):
            if self.timing_menu and len(payload) >= 2:
                self._menu_command(payload)

    def _menu_command(self, payload: bytes) -> None:
        cid, setting = payload[0], payload[1] == 1
        if cid == proto.Command.TIMING:
            if setting and len(payload) >= 12:
                self._set_train(*(int.from_bytes(payload[i:i + 2], "big") for i in (3, 5, 7, 9)))
                if payload[2] & 0x0F < len(proto.TIMING_CONTROLS):
                    self.timing_control = payload[2] & 0x0F
                self.prior_warning_sound = bool(payload[11])
            self._send(self._timing_reply())
        elif cid == proto.Command.DELAYS:
            if setting and len(payload) >= 8:
                new = (int.from_bytes(payload[2:4], "big") / 10,
                       int.from_bytes(payload[4:6], "big", signed=True) / 10,
                       int.from_bytes(payload[6:8], "big"))
                try:
                    proto.delays_set_command(*new)  # on the unit's grid?
                    self.delays_ms = new
                except ConfigError:
                    pass  # refused: the reply shows the old values
            self._send(proto.DelaysReply(*self.delays_ms))
        else:
            t = self.train
            self._send(proto.PageCountReply(t.number_of_trains, t.total_pulses,
                                            self.pulses_delivered & 0xFFFF, self.page))

    def _timing_reply(self) -> proto.TimingReply:
        t = self.train
        return proto.TimingReply(
            t.rep_rate_hz, t.pulses_in_train, t.number_of_trains, t.iti_s,
            timing_control=self.timing_control, prior_warning_sound=self.prior_warning_sound,
            ramp_up_percent=self.ramp_up_percent, ramp_up_trains=self.ramp_up_trains,
            extended_rate=self.extended_rate)

    def _set_train(self, rate_tenths: int, pulses: int, trains: int, iti_tenths: int) -> None:
        try:
            if not self.train_running:
                self.train = proto.validate_train(
                    rate_tenths / 10, pulses, trains, iti_tenths / 10, model=self.model,
                    waveform=self.waveform, mode=self.mode, extended_rate=self.extended_rate)
        except ConfigError:
            pass  # the unit keeps its old values; the echo shows the host they differ

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
    def on_trigger(self) -> None:
        """TTL trigger input (RTS of the URL port): one pulse when enabled, like ``03``."""
        with self._state:
            if not self.enabled or self.train_running:
                self.ignored_triggers += 1
                return
        self._discharge()

    def _discharge(self, time_s: float | None = None) -> None:
        """One pulse: stamped ``time_s`` when the unit's own timing fixes it (a pulse of a
        train), by default the command's discharge time."""
        with self._state:
            amplitude = self.amplitude_percent
            self.pulses_delivered += 1
            self.coil_temperature_c += WARMING_C_PER_PULSE * (amplitude / 100) ** 2
            event = Discharge(time_s=self.discharge_time_s() if time_s is None else time_s,
                              intensity_percent=float(amplitude),
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
            target=self._run_train, args=(settings, local_clock(), self.discharge_time_s()),
            daemon=True,
            name=f"{self.name}-train")
        self._train_thread.start()

    def _run_train(self, settings: proto.TrainSettings, start_s: float, first_s: float) -> None:
        """Deliver the train sequence: each pulse is due at ``start_s`` plus its place in
        the sequence, and is stamped ``first_s`` (the first discharge) plus the same
        offset. The unit times its own trains, so a discharge happens on schedule even
        when this thread runs late on a loaded host (the stamp does not follow the thread).
        """
        period_s = 1.0 / settings.rep_rate_hz
        train_start_s = start_s
        try:
            for train in range(settings.number_of_trains):
                if train:
                    train_start_s += settings.train_duration_s + settings.iti_s
                for pulse in range(settings.pulses_in_train):
                    due_s = train_start_s + pulse * period_s
                    self._device_due_s = first_s + (due_s - start_s)
                    if self._train_stop.wait(max(0.0, due_s - local_clock())):
                        break
                    if self._stop.is_set() or not self.enabled:
                        break
                    self._discharge(first_s + (due_s - start_s))
                if self._train_stop.is_set() or self._stop.is_set() or not self.enabled:
                    break
        finally:
            with self._state:
                if self._train_thread is threading.current_thread():  # not a newer train's
                    self._device_due_s = None
                    self._train_thread = None
        with self._state:
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
