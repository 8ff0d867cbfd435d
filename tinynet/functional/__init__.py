"""Pure forward/backward functions: forward returns ``(y, cache)``, backward takes ``(grad_y, cache)``."""
