"""The local Prefect stack: `collector up`, its automations, the REST client and diagnostics."""
