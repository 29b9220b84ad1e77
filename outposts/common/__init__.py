"""What every outpost shares: settings, the core API client, the control-channel runtime."""
