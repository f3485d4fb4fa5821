"""The operations every front end performs (console, admin API, CLI), each in one place.

Each operation validates its input, does its work and writes its audit entry in
one transaction, and then, when it runs inside the server (``live`` given), ends
the affected sessions and forgets cached mappings at once. From another process
(the CLI) there is nothing live to reach: the rows are gone and the server sees
it within its revalidation window.
"""
