"""The sign-in wing: sessions, cookies, CSRF, sign-in, OIDC, rate limits, mappings access."""
