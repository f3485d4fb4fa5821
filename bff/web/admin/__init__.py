"""The admin wing: the console pages, the admin API and the helpers they share."""
