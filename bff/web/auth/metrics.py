"""Sign-in and session metrics, registered once per app on its own registry."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

LoginMethod = Literal["password", "oidc"]
LoginOutcome = Literal["success", "invalid", "rate_limited", "busy", "refused", "error"]


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.active_sessions = Gauge(
            "bff_active_sessions",
            "Signed-in sessions that have not expired or been revoked (all instances).",
            registry=registry,
        )
        self.login_attempts = Counter(
            "bff_login_attempts",
            "Sign-in attempts by method and outcome.",
            ["method", "outcome"],
            registry=registry,
        )
        self.password_checks = Gauge(
            "bff_password_checks",
            "Sign-in attempts checking a password or waiting to (this instance).",
            registry=registry,
        )

    def login(self, method: LoginMethod, outcome: LoginOutcome) -> None:
        self.login_attempts.labels(method, outcome).inc()
