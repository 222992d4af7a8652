"""What the hub loads: its configuration functions, authenticator and spawner."""
