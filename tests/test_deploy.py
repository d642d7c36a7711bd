"""Deployment files and scripts: docker-compose.yml is valid and pinned; the sandbox CLI serves."""

from __future__ import annotations

import os
import subprocess

import requests
import yaml

from tests.conftest import ROOT, free_port


def test_compose_services_and_pinned_images():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"minio", "minio-init", "luigid", "pipeline"}
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image} is not pinned"
    assert "--state-path" in services["luigid"]["command"] and "luigid-state" in compose["volumes"]
    assert "mc mb" in services["minio-init"]["entrypoint"] and "anonymous set none" in services["minio-init"]["entrypoint"]
    env = services["minio"]["environment"]
    assert all(value.startswith("${") for value in env.values()), "credentials must come from .env"
    assert services["pipeline"]["environment"]["LUIGI_CONFIG_PATH"].endswith("docs/production.cfg")
    assert (ROOT / "docs" / "production.cfg").exists()


def test_sandbox_script_starts_and_stops_a_real_server(tmp_path):
    port = free_port()
    env = {**os.environ, "SANDBOX_PORT": str(port), "SANDBOX_DIR": str(tmp_path), "SANDBOX_BEARER_TOKEN": "cli-token"}
    script = str(ROOT / "scripts" / "sandbox.sh")
    subprocess.run([script, "start", "--volume", "50"], env=env, check=True, capture_output=True, timeout=60)
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/2/tweets/search/all", timeout=10,
                              headers={"Authorization": "Bearer cli-token"},
                              params={"query": "#FlixBus", "start_time": "2022-09-12T00:00:00Z",
                                      "end_time": "2022-09-13T00:00:00Z", "max_results": "100"})
        assert answer.status_code == 200 and 40 <= answer.json()["meta"]["result_count"] <= 60
        assert answer.headers["x-rate-limit-limit"] == "300"
    finally:
        subprocess.run([script, "stop"], env=env, check=True, capture_output=True, timeout=60)
    assert not (tmp_path / "sandbox.pid").exists()
