"""Whether a Prefect server may be configured, read without importing Prefect
(flows/temporary_server.py): any settings file that mentions one counts, so an unchanged rerun
skips the server only when none can be meant."""

from __future__ import annotations

from flows.temporary_server import settings_files_may_name_a_server


def test_no_settings_files_name_no_server(tmp_path):
    env = {"PREFECT_HOME": str(tmp_path / "home")}
    assert not settings_files_may_name_a_server(env, tmp_path)


def test_a_profile_naming_a_server_counts_whichever_is_active(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        'active = "local"\n[profiles.local]\n[profiles.remote]\nPREFECT_API_URL = "http://h:4200/api"\n'
    )
    assert settings_files_may_name_a_server({"PREFECT_HOME": str(home)}, tmp_path)
    elsewhere = tmp_path / "p.toml"
    elsewhere.write_text('[profiles.x]\nPREFECT_SERVER_EPHEMERAL_ENABLED = "false"\n')
    assert settings_files_may_name_a_server({"PREFECT_PROFILES_PATH": str(elsewhere)}, tmp_path)


def test_settings_files_of_the_working_folder_count(tmp_path):
    env = {"PREFECT_HOME": str(tmp_path / "home")}
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert not settings_files_may_name_a_server(env, tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.prefect.api]\nurl = "http://h:4200/api"\n')
    assert settings_files_may_name_a_server(env, tmp_path)
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / ".env").write_text("PREFECT_API_URL=http://h:4200/api\n")
    assert settings_files_may_name_a_server(env, tmp_path)
    (tmp_path / ".env").unlink()
    (tmp_path / "prefect.toml").write_text("[logging]\nlevel = 'INFO'\n")
    assert settings_files_may_name_a_server(env, tmp_path), "any prefect.toml: unsure"
