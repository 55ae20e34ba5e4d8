"""pyserial URL handlers for labkit's in-process emulators (``labkitsim://name``)."""
