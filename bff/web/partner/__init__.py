"""The partner wing: the token endpoint, embed launches and the embed pages (DESIGN section 6)."""
