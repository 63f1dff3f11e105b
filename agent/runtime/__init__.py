"""Runtime: the frame loop and the process around it (status file, systemd notify, hardening, the
local control socket, factory reset)."""
