"""The signed-in user's own account: personal API keys, setting a password."""
