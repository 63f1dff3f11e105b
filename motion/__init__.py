"""Pure motion detection and event logic: arrays and parameters in, results out; time is an argument.

Nothing here does I/O, reads a clock or imports another Doorward package.
"""
