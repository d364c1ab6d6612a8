"""Bindings of the ports: dbt_core, dbt_cloud, prefect, local, cli.

The public entry point for users is ``adapters.prefect``.
"""
