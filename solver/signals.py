"""Caffe's SignalHandler (cf. caffe/util/signal_handler.cpp and tools/caffe.cpp): SIGINT and SIGHUP become
requests the solver polls after each iteration, so training stops or snapshots at a clean point.

Caffe's defaults: SIGINT -> "stop" (Solve then writes its final snapshot), SIGHUP -> "snapshot" (and go on).
A second SIGINT after a stop was requested interrupts at once (KeyboardInterrupt), for a stuck iteration;
the snapshots already written are intact, as they are written atomically.

    with SignalHandler(sigint_effect="stop", sighup_effect="snapshot") as handler:
        solver.set_action_function(handler.check)
        solver.solve()
"""
import signal

from solver.solver import NONE, SNAPSHOT, STOP

EFFECTS = (STOP, SNAPSHOT, NONE)


class SignalHandler:
    def __init__(self, sigint_effect=STOP, sighup_effect=SNAPSHOT):
        for name, effect in (("sigint_effect", sigint_effect), ("sighup_effect", sighup_effect)):
            if effect not in EFFECTS:
                raise ValueError(f"{name} must be one of {', '.join(EFFECTS)}, got {effect!r}")
        self.effects = {signal.SIGINT: sigint_effect}
        if hasattr(signal, "SIGHUP"):                 # not on Windows
            self.effects[signal.SIGHUP] = sighup_effect
        self.pending = []
        self._stop_requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self._stop_requested:
            raise KeyboardInterrupt
        effect = self.effects[signum]
        if effect == STOP:
            self._stop_requested = True
        if effect != NONE:
            self.pending.append(effect)

    def check(self):
        """The next requested action ('stop', 'snapshot' or 'none'); each signal is reported once."""
        return self.pending.pop(0) if self.pending else NONE

    def __enter__(self):
        for signum in self.effects:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False
