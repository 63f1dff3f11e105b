"""Tools: the CLI's handlers and the offline tools (status, clips, device, doctor, analyze)."""
