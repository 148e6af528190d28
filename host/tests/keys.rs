//! The server's keys and files at rest (review findings 1 and 11c–f): an empty secret,
//! from the environment or a file, never authenticates; an admin secret that could never
//! work is refused at start; key files are written whole; the data dir is private.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::{Server, serve_command, temp_dir};

/// Runs `floom serve` expecting it to refuse to start; returns what it said.
fn refused_start(data_dir: &Path, env: &[(&str, Option<&str>)]) -> String {
    let child = serve_command(data_dir, &[], env)
        .stdout(Stdio::null())
        .spawn()
        .expect("start floom serve");
    let output = child.wait_with_output().expect("wait");
    assert!(!output.status.success(), "the server started");
    std::fs::read_to_string(data_dir.join("server.log")).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn empty_or_unusable_admin_secrets_refuse_to_start() {
    let dir = temp_dir("keys");
    let said = refused_start(&dir, &[("FLOOM_SECRET", Some(""))]);
    assert!(said.contains("FLOOM_SECRET is set but empty"), "{said}");
    let said = refused_start(&dir, &[("FLOOM_SECRET", Some("   "))]);
    assert!(said.contains("FLOOM_SECRET is set but empty"), "{said}");
    let said = refused_start(&dir, &[("FLOOM_SECRET", Some("floom_0123456789"))]);
    assert!(said.contains("must not start with \"floom_\""), "{said}");
    let said = refused_start(&dir, &[("FLOOM_MASTER_KEY", Some(""))]);
    assert!(said.contains("FLOOM_MASTER_KEY is set but empty"), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_empty_admin_token_file_is_regenerated_and_empty_credentials_never_pass() {
    // What a first start that died between creating the file and writing it left.
    let dir = temp_dir("keys");
    std::fs::write(dir.join("admin-token"), "").unwrap();
    let server = Server::start_with_env(dir.clone(), &[], &[("FLOOM_SECRET", None)]);
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64, "a fresh token: {token:?}");
    assert_eq!(mode(&dir.join("admin-token")), 0o600);

    for (name, value) in [
        ("x-floom-secret", ""),
        ("x-floom-secret", "  "),
        ("x-floom-token", ""),
        ("authorization", "Bearer "),
        ("authorization", "Bearer    "),
    ] {
        let response = server
            .get("/api/tokens")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{name}: {value:?}");
    }
    let response = server
        .get("/api/tokens")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(log.contains("admin token from"), "{log}");
    assert!(!log.contains("from FLOOM_SECRET"), "{log}");
}

#[test]
fn an_empty_master_key_file_is_refused_not_replaced() {
    let dir = temp_dir("keys");
    std::fs::write(dir.join("master-key"), "\n").unwrap();
    let said = refused_start(&dir, &[]);
    assert!(said.contains("master-key is empty"), "{said}");
    assert_eq!(
        std::fs::read_to_string(dir.join("master-key")).unwrap(),
        "\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_data_dir_and_everything_in_it_are_private() {
    let dir = temp_dir("keys");
    // A data dir from before this rule: world-readable.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("master-key"), format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(
        dir.join("master-key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let server = Server::start_in(dir.clone(), &["--examples=rust"]);
    let run = server
        .run_sync("/api/apps/hello/run", serde_json::json!({}))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // An empty view token reads nothing.
    let id = run["execution_id"].as_str().unwrap();
    let response = server
        .get(&format!("/api/executions/{id}?view_token="))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Give the WAL a moment to exist on disk.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mode(&dir), 0o700);
    for name in ["floom.db", "floom.db-wal", "master-key", "server.log"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&dir.join("components")), 0o700);
    for entry in std::fs::read_dir(dir.join("components")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}
