"""Test and demo tooling, not shipped with the package: the X API sandbox, the browser checker of
the report (Playwright on the system Chromium), the local SeaweedFS's identities file, and the
Parquet sink of the curation benchmark. Importable from a checkout whose venv
scripts/lib.sh made (it puts the checkout on the venv's path)."""
