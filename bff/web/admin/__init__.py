"""The admin wing: the admin API (and, from another session, the console pages)."""
