"""Test-wide settings: hypothesis must not fail on a slow machine.

CI runs the integration suite (a Prefect server, dbt) in the same process
before the property tests; data generation can then be slow, which is not a
failure of the property.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "project", suppress_health_check=[HealthCheck.too_slow], deadline=None, print_blob=True
)
settings.load_profile("project")
