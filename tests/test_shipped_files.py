"""What an installer copies from the repository must work as shipped."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main
from callbuddy_pbx.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMI_SECRET", "from-the-environment")
    monkeypatch.setenv("SMPP_PASSWORD", "smpp-pw1")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-token-from-env")
    monkeypatch.setenv("WEBHOOK_TOKEN", "webhook-token-from-the-environment")
    monkeypatch.setenv("PBX_SECRET_KEY", "pbx-secret-key-from-the-environment-0123")
    monkeypatch.setenv("TRUNK_PASSWORD", "trunk-password-from-env")


def example_config_in(tmp_path: Path) -> Path:
    """The example config beside the trunk templates' place, its state folder (/var/lib/callbuddy) moved to tmp."""
    text = (ROOT / "asterisk_conf" / "callbuddy.example.yaml").read_text()
    path = tmp_path / "callbuddy.yaml"
    path.write_text(text.replace(STATE_DIR, str(tmp_path / "state")))
    return path


STATE_DIR = "/var/lib/callbuddy"  # the systemd unit's StateDirectory and the Docker image's volume


def test_example_config_keeps_its_state_in_the_service_state_folder() -> None:
    """Relative paths would land beside the config in /etc/callbuddy, read-only to the service under systemd."""
    config = load_config(ROOT / "asterisk_conf" / "callbuddy.example.yaml")
    assert config.storage.path == Path(STATE_DIR) / "callbuddy.sqlite3"
    assert config.web.users_file == Path(STATE_DIR) / "users.yaml"
    unit = (ROOT / "asterisk_conf" / "callbuddy-pbx.service").read_text()
    assert re.search(r"^StateDirectory=callbuddy$", unit, flags=re.M)
    assert re.search(rf"^ReadWritePaths={STATE_DIR}$", unit, flags=re.M)
    assert "useradd --system" in unit  # says to create the user it runs as
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f'VOLUME ["{STATE_DIR}"]' in dockerfile
    assert "8080/healthz" not in dockerfile  # the health check asks the configured port


def test_example_config_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--offline", "--config", str(example_config_in(tmp_path))]) == 0
    assert (tmp_path / "state").is_dir()  # check creates the storage folder, as run would
    out = capsys.readouterr().out
    assert "Glow Salon" in out
    assert "+15550001000 rings 100, 101 (ring all, 20 s), then voicemail 100" in out  # what render will set up
    assert "from-the-environment" not in out  # secrets are never printed
    assert "smpp-pw1" not in out and "twilio-token" not in out


def test_readme_config_example_loads(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    path = tmp_path / "callbuddy.yaml"
    path.write_text(block)
    config = load_config(path)
    assert [b.name for b in config.businesses] == ["Glow Salon", "Bright Smile Dental"]
    assert config.businesses[0].numbers == ("+15550001000", "+15550001003")
    assert [g.name for g in config.gateways] == ["smsc", "twilio"]
    assert config.businesses[0].text_back.quiet_hours is not None
    assert [g.number for g in config.pbx.ring_groups] == ["+15550001000", "+15550001003", "+15550001007"]
    assert config.web.users_file == tmp_path / "users.yaml"
    assert config.alerts.sms_to == ("+15550109999",) and config.alerts.gateway == "smsc"
    digest = config.businesses[1].digest
    assert digest is not None and digest.time == "08:00" and digest.sms_to == ("+15550102000",)


def test_readme_config_renders_a_dialplan_that_passes_asterisklint(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    (tmp_path / "callbuddy.yaml").write_text(block)
    assert main(["render", "--config", str(tmp_path / "callbuddy.yaml"), "--out", str(tmp_path / "asterisk")]) == 0
    lint = Path(sys.executable).parent / "asterisklint"
    result = subprocess.run(
        [str(lint), "dialplan-check", str(tmp_path / "asterisk" / "extensions.conf")], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_manager_conf_gives_the_event_classes_the_readme_asks_for() -> None:
    text = (ROOT / "asterisk_conf" / "manager.conf").read_text()
    assert re.search(r"^timestampevents\s*=\s*yes", text, flags=re.M)
    (read,) = re.findall(r"^read\s*=\s*(.+)$", text, flags=re.M)
    assert {"call", "dialplan", "agent", "system"} <= {c.strip() for c in read.split(",")}
    (write,) = re.findall(r"^write\s*=\s*(.+)$", text, flags=re.M)
    assert "reporting" in write  # CoreShowChannels after a reconnect
