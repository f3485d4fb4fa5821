"""The end user's wing: the dashboard page, token delivery, the vendor proxy."""
